"""`kato history` and `kato lock status|break`: read the journal and the lock on the core node."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from kato import journal, lock
from kato.config import Cluster
from kato.connect import connections
from kato.errors import UsageError


def history(cluster: Cluster, limit: int) -> list[dict[str, Any]]:
    if limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    with connections(cluster) as conns:
        return journal.read(conns.get(cluster.core), limit)


def lock_status(cluster: Cluster) -> lock.LockState:
    with connections(cluster) as conns:
        return lock.status(conns.get(cluster.core))


@dataclass(frozen=True)
class Broken:
    record: dict[str, Any]  # the lock as it was
    removed: bool  # False: marked broken, its live holder stops before its next command


def break_lock(cluster: Cluster, lock_id: str) -> Broken:
    """Break the lock with this id (only that one: a new holder's lock is never broken), and
    journal who broke it. A holder known to be gone (a process of this machine that no longer
    runs, or an expired heartbeat) loses its lock at once; a live one is fenced: it stops
    before its next command on a node, and only then may another operation take the lock."""
    with connections(cluster) as conns:
        core = conns.get(cluster.core)
        state = lock.status(core)
        if state.record is None or state.record.get("id") != lock_id:
            held = state.record.get("id") if state.record else "nobody"
            raise UsageError(
                f"there is no lock with id {lock_id!r} (held by: {held})",
                hint="see `kato lock status`",
            )
        by = lock.me()
        result = lock.break_lock(core, lock_id, by, gone=_holder_gone(state.record))
        journal.Journal(conns, cluster.core).write(
            journal.entry(
                lock_id,
                "lock-broken",
                by=by,
                holder=state.record.get("owner"),
                command=str(state.record.get("command", "")).split(),
                result="removed" if result == "released" else "holder fenced",
            )
        )
        return Broken(state.record, removed=result == "released")


def _holder_gone(record: dict[str, Any]) -> bool:
    """True when the holder ran on this machine and its process no longer exists."""
    if record.get("owner", "").rsplit("@", 1)[-1] != socket.gethostname():
        return False
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
