"""`kato history` and `kato lock status|break`: read the journal and the lock on the core node."""

from __future__ import annotations

from collections.abc import Callable
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


def break_lock(
    cluster: Cluster,
    lock_id: str,
    confirm: Callable[[dict[str, Any]], bool] = lambda record: True,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Remove the lock with this id (only that one: a new holder's lock is never broken),
    once `confirm` says yes; a dry run only checks it is there."""
    with connections(cluster) as conns:
        core = conns.get(cluster.core)
        state = lock.status(core)
        if state.record is None or state.record.get("id") != lock_id:
            held = state.record.get("id") if state.record else "nobody"
            raise UsageError(
                f"there is no lock with id {lock_id!r} (held by: {held})",
                hint="see `kato lock status`",
            )
        if dry_run:
            return state.record
        if not confirm(state.record):
            raise UsageError(f"lock {lock_id} was not broken", hint="nothing was changed")
        lock.break_lock(core, lock_id)
        return state.record
