"""A fake cluster for unit tests: Transports that answer argv from a small in-memory model of
each node (units, health, files, the lock and the journal on the core), recording every call.

    fake = FakeCluster(["node1", "node2"])
    with session(fake.cluster, ["kato", "x"], factory=fake.factory) as s: ...
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from kato.config import Cluster, NodeConfig, SshSettings
from kato.errors import NodeUnreachable, RemoteCommandFailed
from kato.journal import JOURNAL_PATH
from kato.lock import LOCK_PATH
from kato.remote.agent import SHIP
from kato.remote.layout import AGENT as AGENT_DIR
from kato.transport.base import CommandResult, SshOptions

Answer = Callable[["FakeNode", tuple[str, ...], bytes | None], tuple[int, str, str] | None]


@dataclass
class FakeNode:
    name: str
    units: dict[str, str] = field(default_factory=dict)  # unit -> active state
    healthy: bool = True  # what every health check on the node answers
    sick_while: str | None = None  # or: unhealthy while this file exists (a bad change)
    files: dict[str, bytes] = field(default_factory=dict)
    down: bool = False  # every command: NodeUnreachable
    boot_id: str = "boot-1"


class FakeCluster:
    def __init__(self, names: Sequence[str], roles: Sequence[str] = ("web",)) -> None:
        self.nodes = {n: FakeNode(n) for n in names}
        self.cluster = Cluster(
            "fake",
            names[0],
            tuple(
                NodeConfig(n, f"198.18.9.{i + 1}", 22, tuple(roles)) for i, n in enumerate(names)
            ),
            SshSettings(parallel=10),
        )
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.answers: list[Answer] = []  # tried first, in order; None: not mine
        self.lock: dict[str, object] | None = None
        self.journal: list[dict[str, object]] = []
        self.opened: list[str] = []
        self._guard = threading.Lock()

    def factory(self, node: str, address: str, port: int, options: SshOptions) -> FakeTransport:
        self.opened.append(node)
        return FakeTransport(node, self)

    def ran(self, node: str | None = None) -> list[tuple[str, ...]]:
        return [argv for n, argv in self.calls if node is None or n == node]

    def answer(
        self, node: FakeNode, argv: tuple[str, ...], stdin: bytes | None
    ) -> tuple[int, str, str]:
        for custom in self.answers:
            got = custom(node, argv, stdin)
            if got is not None:
                return got
        if argv[:2] == ("python3", "-c") and LOCK_PATH in argv:
            out = self._lock(argv[4], json.loads(argv[5]))
            if len(argv) > 6 and out["result"] in ("acquired", "released", "absent"):
                lines = self._journaled(stdin)  # the begin (acquire) or last lines (release)
                if argv[4] == "acquire" and out.get("taken_over"):
                    lines[0]["took_over_lock"] = out["taken_over"]["id"]  # type: ignore[index]
                self.journal += lines
            return 0, json.dumps(out), ""
        if argv == ("cat", "--", LOCK_PATH):  # the lock's plain-read check (lock.fence)
            return (0, json.dumps(self.lock), "") if self.lock else (1, "", "No such file")
        if argv[:2] == ("python3", "-c") and argv[-2] in ("append", "append-lines"):
            if argv[-1] == JOURNAL_PATH:
                self.journal += self._journaled(stdin)
            return 0, "", ""
        if argv[:2] == ("python3", "-S") and argv[2].startswith(AGENT_DIR + "/"):
            return self._agent(node, argv[1:], stdin)
        if argv[:3] == ("sh", "-c", SHIP):
            node.files[argv[-1]] = stdin or b""
            return 0, "", ""
        if argv[:2] == ("ls", "--") and argv[2].startswith(AGENT_DIR + "/"):
            return (0 if argv[2].rsplit("/", 1)[0] in node.files else 2), "", ""
        if argv[:2] == ("systemctl", "is-active"):
            states = [node.units.get(u, "inactive") for u in argv[3:]]
            return (0 if set(states) == {"active"} else 3), "\n".join(states) + "\n", ""
        if argv[0] == "systemctl" and argv[1] in ("start", "stop", "restart"):
            for unit in argv[3:]:
                node.units[unit] = "inactive" if argv[1] == "stop" else "active"
            return 0, "", ""
        if argv[0] == "curl" or argv[:2] == ("python3", "-c") or argv[0] == "timeout":
            sick = not node.healthy or (
                node.sick_while is not None and node.sick_while in node.files
            )
            return (22, "", "curl: (22) 503") if sick else (0, "", "")
        if argv == ("cat", "/proc/sys/kernel/random/boot_id"):
            return 0, node.boot_id + "\n", ""
        if argv[0] == "touch":
            node.files[argv[-1]] = b""
            return 0, "", ""
        if argv[0] == "rm":
            node.files.pop(argv[-1], None)
            return 0, "", ""
        if argv[0] == "false":
            return 1, "", "false: it failed"
        return 0, "", ""

    @staticmethod
    def _journaled(stdin: bytes | None) -> list[dict[str, object]]:
        """The journal lines after safe_write's program on a command's stdin."""
        size, _, rest = (stdin or b"").partition(b"\n")
        return [json.loads(line) for line in rest[int(size) :].decode().splitlines()]

    def sick(self, node: FakeNode) -> bool:
        return not node.healthy or (node.sick_while is not None and node.sick_while in node.files)

    def _agent(
        self, node: FakeNode, argv: tuple[str, ...], stdin: bytes | None
    ) -> tuple[int, str, str]:
        """The node agent as a node with the bundle would answer (facts and role cycles)."""
        directory, program = argv[1].rsplit("/", 1)
        if directory not in node.files:
            return 2, "", f"python3: can't open file '{argv[1]}': [Errno 2] No such file"
        if program == "role_cycle.py":
            if "--wait" in argv and not stdin:  # a standby cancelled: it starts nothing
                return 0, "", ""
            return 0, json.dumps(self._cycle(node, json.loads(stdin or b"{}"))), ""
        if program != "node_facts.py":
            return 0, "{}", ""
        return 0, json.dumps(self._facts(node, json.loads(argv[2]))), ""

    def _cycle(self, node: FakeNode, request: dict[str, Any]) -> dict[str, Any]:
        """role_cycle.py: each command as this fake answers it, then the roles' health once
        (a fake node's health does not change with time: unhealthy is late at once)."""
        seconds: list[float] = []
        for i, command in enumerate(request.get("commands", [])):
            self.calls.append((node.name, tuple(command["argv"])))
            status, _, err = self.answer(node, tuple(command["argv"]), None)
            seconds.append(0.001)
            if status != 0:
                failed = {"index": i, "status": status, "error": err.strip(), "stderr": err}
                return {"ran": i + 1, "failed": failed, "seconds": seconds, "health": {}}
        roles = request.get("roles") or {}
        health = self._facts(node, {"roles": roles}).get("health", {}) if roles else {}
        late = next((r for r in roles if health.get(r) is not None), None)
        ran = len(seconds)
        return {"ran": ran, "failed": None, "seconds": seconds, "health": health, "late": late}

    def _facts(self, node: FakeNode, request: dict[str, Any]) -> dict[str, Any]:
        units = {
            role: {u: node.units.get(u, "inactive") for u in spec["units"]}
            for role, spec in request.get("roles", {}).items()
        }
        health = {
            role: (
                f"not running ({', '.join(u for u, s in states.items() if s != 'active')})"
                if any(s != "active" for s in states.values())
                else ("HTTP 503" if self.sick(node) else None)
            )
            for role, states in units.items()
        }
        doc = {"format": 1, "boot_id": node.boot_id, "version": "1.0.0", "now": time.time()}
        return {**doc, "units": units, "health": health}

    def _lock(self, op: str, arg: dict[str, object]) -> dict[str, object]:
        with self._guard:
            out: dict[str, object] = {
                "now": time.time(),
                "lock": self.lock,
                "alive": bool(self.lock),
            }
            if op == "acquire":
                if self.lock and self.lock.get("id") != arg["id"]:
                    out["result"] = "held"
                else:
                    self.lock = {**arg, "started": time.time(), "heartbeat": time.time()}
                    out.update(result="acquired", lock=self.lock, taken_over=None)
            elif op == "release":
                released = self.lock is not None and self.lock.get("id") == arg["id"]
                self.lock = None if released else self.lock
                out["result"] = "released" if released else "absent"
            elif op in ("heartbeat", "fence"):
                mine = self.lock is not None and self.lock.get("id") == arg["id"]
                broken = self.lock.get("broken") if mine and self.lock else None
                if isinstance(broken, dict) and op == "fence":
                    broken["seen"] = time.time()
                out["result"] = "broken" if broken else "ok" if mine else "lost"
            else:
                out["result"] = "status"
            return out


class FakeTransport:
    def __init__(self, node: str, world: FakeCluster) -> None:
        self.node = node
        self.world = world

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        check: bool = True,
    ) -> CommandResult:
        args = tuple(argv)
        self.world.calls.append((self.node, args))
        node = self.world.nodes[self.node]
        if node.down:
            raise NodeUnreachable(self.node, "connect", "no route to host")
        status, out, err = self.world.answer(node, args, stdin)
        if check and status != 0:
            raise RemoteCommandFailed(self.node, args, status, err)
        return CommandResult(self.node, args, status, out, err, 0.001)

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        self.world.nodes[self.node].files[path] = data

    def get(self, path: str) -> bytes:
        return self.world.nodes[self.node].files[path]

    def stream_out(
        self,
        argv: Sequence[str],
        sink: BinaryIO,
        *,
        idle_timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        return self.run(argv, stdin=stdin, check=False)

    def stream_in(
        self, argv: Sequence[str], source: BinaryIO, *, idle_timeout: float | None = None
    ) -> CommandResult:
        return self.run(argv, stdin=source.read(), check=False)

    def close(self) -> None:
        pass
