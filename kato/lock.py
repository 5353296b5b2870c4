"""The cluster lock: a JSON file on the core node (/run/kato/lock), guarded by flock there.

A holder refreshes its heartbeat every TTL/4; a lock whose heartbeat is older than its TTL
belongs to a dead holder and is taken over. Times are the core node's clock, so clients with
skewed clocks still agree.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from kato.errors import KatoError, LockHeld
from kato.remote import layout
from kato.transport.base import Transport
from kato.transport.pool import Connections

LOCK_PATH = layout.LOCK
FORMAT = 1
DEFAULT_TTL = float(os.environ.get("KATO_LOCK_TTL", "60"))  # seconds without a heartbeat
PATIENCE = 120.0  # how long a held lock waits for a rebooting core node before giving up

# Runs on the core node with python3: one read-modify-write under an exclusive flock.
SCRIPT = r"""
import fcntl, json, os, sys, time
path = sys.argv[1]; op = sys.argv[2]; arg = json.loads(sys.argv[3])
os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
guard = open(path + ".guard", "a")
fcntl.flock(guard, fcntl.LOCK_EX)
now = time.time()
try:
    with open(path) as f: cur = json.load(f)
except FileNotFoundError: cur = None
except ValueError: cur = {"id": "corrupt", "heartbeat": 0, "ttl": 0}
def write(d):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(d, f); f.flush(); os.fsync(f.fileno())
    os.replace(tmp, path)
def alive(d): return d is not None and now - d.get("heartbeat", 0) <= d.get("ttl", 0)
out = {"now": now, "lock": cur, "alive": alive(cur)}
if op == "acquire":
    if alive(cur) and cur.get("id") != arg["id"]:
        out["result"] = "held"
    else:
        arg["started"] = cur["started"] if cur and cur.get("id") == arg["id"] else now
        arg["heartbeat"] = now
        write(arg); out["result"] = "acquired"; out["taken_over"] = cur; out["lock"] = arg
elif op == "heartbeat":
    if cur and cur.get("id") == arg["id"]:
        cur["heartbeat"] = now; write(cur); out["result"] = "ok"
    else: out["result"] = "lost"
elif op in ("release", "break"):
    if cur and cur.get("id") == arg["id"]:
        os.unlink(path); out["result"] = "released"
    else: out["result"] = "absent"
else: out["result"] = "status"
print(json.dumps(out))
"""


@dataclass(frozen=True)
class LockState:
    """What the core node says about the lock: its record (or None) and whether it is live."""

    record: dict[str, Any] | None
    alive: bool
    now: float


def _call(core: Transport, op: str, arg: dict[str, Any]) -> dict[str, Any]:
    done = core.run(("python3", "-c", SCRIPT, LOCK_PATH, op, json.dumps(arg)), timeout=30)
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def status(core: Transport) -> LockState:
    answer = _call(core, "status", {})
    return LockState(shown(answer["lock"]), bool(answer["alive"]), float(answer["now"]))


def shown(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    shown = dict(record)
    for key in ("started", "heartbeat"):
        if isinstance(shown.get(key), int | float):
            shown[f"{key}_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(shown[key]))
    return shown


def break_lock(core: Transport, lock_id: str) -> bool:
    return bool(_call(core, "break", {"id": lock_id})["result"] == "released")


class ClusterLock:
    """The lock held by this process; a thread keeps its heartbeat fresh until release()."""

    def __init__(
        self, conns: Connections, core: str, command: str, ttl: float = DEFAULT_TTL
    ) -> None:
        self.conns = conns
        self.core = core
        self.ttl = ttl
        self.record: dict[str, Any] = {
            "format": FORMAT,
            "id": uuid.uuid4().hex[:12],
            "owner": f"{getpass.getuser()}@{socket.gethostname()}",
            "pid": os.getpid(),
            "command": command,
            "ttl": ttl,
        }
        self.taken_over: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def acquire(self, wait: float = 0.0) -> None:
        deadline = time.monotonic() + wait
        while True:
            answer = self.conns.call(self.core, lambda t: _call(t, "acquire", self.record))
            if answer["result"] == "acquired":
                self.taken_over = shown(answer.get("taken_over"))
                break
            if time.monotonic() >= deadline:
                raise LockHeld(shown(answer["lock"]) or {}, wait)
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        self._thread = threading.Thread(target=self._beat, name="kato-lock-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                answer = self.conns.call(
                    self.core, lambda t: _call(t, "heartbeat", {"id": self.id})
                )
                if answer["result"] == "lost" and not self._reassert():
                    self.lost = True
                    return
            except KatoError:
                continue  # a missed beat; the TTL allows three more

    def _reassert(self) -> bool:
        """The lock file is gone (the core node rebooted: /run is a tmpfs): take it again,
        unless somebody else holds it by now."""
        answer = self.conns.call(self.core, lambda t: _call(t, "acquire", self.record), PATIENCE)
        return bool(answer["result"] == "acquired")

    def release(self, patience: float = PATIENCE) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.conns.call(self.core, lambda t: _call(t, "release", {"id": self.id}), patience)
