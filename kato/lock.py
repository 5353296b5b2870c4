"""The cluster lock: a JSON file on the core node (/run/kato/lock), guarded by flock there.

A holder refreshes its heartbeat every TTL/4; a lock whose heartbeat is older than its TTL
belongs to a dead holder and is taken over. Times are the core node's clock, so clients with
skewed clocks still agree.

Breaking a live holder's lock only marks it broken: the holder checks its lock before each
command on a node (its fencing token) and stops there, marking the break seen; only then, or
once its heartbeat has expired, may another operation take the lock. So two operations never
run side by side.
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
from pathlib import Path
from typing import Any

from kato import core_link
from kato.core_link import CoreLink
from kato.errors import KatoError, LockHeld, LockLost
from kato.remote import core_lock, layout, safe_write
from kato.transport.base import Transport
from kato.transport.pool import Connections

LOCK_PATH = layout.LOCK
FENCE_REUSE = 0.5  # seconds a fence check answers the commands asking after it began
FORMAT = 1
DEFAULT_TTL = float(os.environ.get("KATO_LOCK_TTL", "60"))  # seconds without a heartbeat
PATIENCE = 120.0  # how long a held lock waits for a rebooting core node before giving up

# Runs on the core node with python3: one read-modify-write under an exclusive flock, or the
# operation's one program there (`link`): kato/remote/core_lock.py.
SCRIPT = Path(core_lock.__file__).read_text(encoding="utf-8")


@dataclass(frozen=True)
class LockState:
    """What the core node says about the lock: its record (or None) and whether it is live."""

    record: dict[str, Any] | None
    alive: bool
    now: float


def _call(
    core: Transport, op: str, arg: dict[str, Any], journal: bytes | None = None
) -> dict[str, Any]:
    """One read-modify-write of the lock; `journal` lines (acquire: the begin entry, to which
    the core adds the lock taken over; release: the last lines) are appended in the same call,
    through safe_write, so taking the lock and releasing it cost no journal round trip."""
    argv: tuple[str, ...] = ("python3", "-c", SCRIPT, LOCK_PATH, op, json.dumps(arg))
    stdin = None
    if journal is not None:
        argv, stdin = (*argv, layout.JOURNAL), safe_write.prelude() + journal
    done = core.run(argv, stdin=stdin, timeout=30)
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


def break_lock(core: Transport, lock_id: str, by: str, gone: bool) -> str:
    """ "released" (the lock is gone: its holder is `gone` or expired) or "marked" (a live
    holder stops before its next command; then the lock may be taken)."""
    return str(_call(core, "break", {"id": lock_id, "by": by, "gone": gone})["result"])


def me() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


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
            "owner": me(),
            "pid": os.getpid(),
            "command": command,
            "ttl": ttl,
        }
        self.taken_over: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False
        self.broken: dict[str, Any] | None = None  # who broke this lock, and when
        self._fencing = threading.Lock()
        self._fenced_at = -1.0  # when the last check that found the lock ours began
        # the operation's program on the core node, from the acquire to the release (None: the
        # one-shot calls, as when it broke)
        self.link: CoreLink | None = None

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def acquire(self, wait: float = 0.0, begin: dict[str, Any] | None = None) -> None:
        """Take the lock (trying every second for up to `wait`), journaling `begin` in the same
        call (with `took_over_lock` when an expired lock was taken over); LockHeld when
        another operation still holds it, KatoError when the journal refused the line (then
        the lock is not taken)."""
        deadline = time.monotonic() + wait
        while True:
            answer = self.conns.call(self.core, lambda t: self._acquire(t, begin))
            if answer["result"] == "refused":
                raise KatoError(
                    f"the journal on {self.core} could not be written: {answer['error']}",
                    hint="nothing was changed; fix the journal's path on the core node",
                )
            if answer["result"] == "acquired":
                self.taken_over = shown(answer.get("taken_over"))
                break
            if time.monotonic() >= deadline:
                raise LockHeld(shown(answer["lock"]) or {}, wait)
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        self._thread = threading.Thread(target=self._beat, name="kato-lock-heartbeat", daemon=True)
        self._thread.start()

    def _acquire(self, core: Transport, begin: dict[str, Any] | None) -> dict[str, Any]:
        if begin is None:
            return _call(core, "acquire", self.record)
        # stamped when it is written, not when the wait began
        stamped = {**begin, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        line = json.dumps(stamped, sort_keys=True).encode()
        argv = ("python3", "-c", SCRIPT, LOCK_PATH, "link", json.dumps(self.record), layout.JOURNAL)
        linked = core_link.start(core, argv, safe_write.prelude() + line + b"\n")
        if linked is None:  # no conversation on this transport, or it broke: the one-shot call
            return _call(core, "acquire", self.record, line)
        self.link, answer = linked
        if answer["result"] != "acquired":
            self.link.close()  # the program has ended; the next try starts another
            self.link = None
        return dict(answer)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                answer = self.conns.call(
                    self.core, lambda t: _call(t, "heartbeat", {"id": self.id})
                )
                if answer["result"] == "broken":
                    self.broken = dict(answer["lock"].get("broken") or {})
                elif answer["result"] == "lost" and not self._reassert():
                    self.lost = True
                    return
            except KatoError:
                continue  # a missed beat; the TTL allows three more

    def _reassert(self) -> bool:
        """The lock file is gone (the core node rebooted: /run is a tmpfs): take it again,
        unless somebody else holds it by now."""
        answer = self.conns.call(self.core, lambda t: _call(t, "acquire", self.record), PATIENCE)
        return bool(answer["result"] == "acquired")

    def fence(self) -> None:
        """Before a command on a node: LockLost if this lock was broken or taken (the break
        is then marked seen, so another operation may take the lock).

        Checks run one at a time, and a check that began at most FENCE_REUSE before this call
        asked answers it too: N nodes' workers asking at once cost one or two checks on the core
        node, not N sessions at once on its connection (sshd allows 10), and a node's next
        command right after its last costs none. A break is then seen at most FENCE_REUSE
        later; nobody else may take the lock before it is seen, so no two operations overlap."""
        asked = time.monotonic()
        with self._fencing:
            if self.lost:
                raise LockLost(self.id, self.broken, "another operation took it")
            if self._fenced_at >= asked - FENCE_REUSE:
                return
            started = time.monotonic()
            self._fence_now()
            self._fenced_at = started

    def _fence_now(self) -> None:
        if self._still_ours():
            return
        answer = self.conns.call(self.core, lambda t: _call(t, "fence", {"id": self.id}))
        if answer["result"] == "ok":
            return
        if answer["result"] == "lost" and answer["lock"] is None and self._reassert():
            return  # the core node rebooted (/run is a tmpfs) and nobody took the lock
        self.lost = True
        if answer["result"] == "broken":
            self.broken = dict(answer["lock"].get("broken") or {})
        raise LockLost(self.id, self.broken, "another operation took it")

    def _still_ours(self) -> bool:
        """The check's common case as a plain read of the lock file (no python3 on the core
        node: a few milliseconds instead of tens): it is ours and nobody broke it. The file
        is only ever replaced whole (a rename), so the read is one version of it; a break
        after it is seen by the next check, as after a full one, and nobody may take the lock
        before that. Anything else (broken, gone, not ours, unreadable) takes the full
        check, which marks a break seen or takes the lock again after a reboot."""
        done = self.conns.call(
            self.core, lambda t: t.run(("cat", "--", LOCK_PATH), timeout=30, check=False)
        )
        try:
            record = json.loads(done.stdout) if done.ok else None
        except ValueError:
            return False
        return isinstance(record, dict) and record.get("id") == self.id and not record.get("broken")

    def release(self, patience: float = PATIENCE, journal: bytes = b"") -> None:
        """Release the lock, appending `journal` lines (the operation's end) in the same call;
        the lock is released even when the journal refuses them, then KatoError says why."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        answer = self._release_linked(patience, journal)
        if answer is None:  # the program is gone (or the core node is): the one-shot call
            answer = self.conns.call(
                self.core, lambda t: _call(t, "release", {"id": self.id}, journal or None), patience
            )
        if answer.get("error"):
            raise KatoError(
                f"the journal on {self.core} could not be written: {answer['error']}",
                hint="the lock was released; the journal lacks this operation's last lines",
            )

    def _release_linked(self, patience: float, journal: bytes) -> dict[str, Any] | None:
        """Release through the operation's program; None when there is none, it broke, or
        `patience` is 0 (the core node is gone: do not wait for its answer)."""
        link, self.link = self.link, None
        if link is None:
            return None
        if patience <= 0:
            link.close()
            return None
        return link.release(journal)
