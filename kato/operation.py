"""Every mutating command runs inside one `with operation(...)`: the cluster lock is held and
the journal records the start, each step and the end, and both are always closed.

An operation opened inside another one of the same process (an upgrade's export, import or
rollback inside the upgrade) joins it: the lock is held from the outer one's first change to its
end, with no moment between phases where a second kato could take it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from kato import journal, lock, pause
from kato.errors import Interrupted, KatoError, LockLost, NodeUnreachable
from kato.journal import Journal
from kato.progress import notice
from kato.transport.pool import Connections


@dataclass
class Operation:
    id: str
    command: list[str]
    journal: Journal | None
    lock: lock.ClusterLock | None
    steps: int = 0
    result: str | None = None  # e.g. "partial", set by a command some of whose nodes failed
    notes: list[str] = field(default_factory=list)

    def settle(self, succeeded: bool, failed: bool) -> None:
        """Record that some nodes failed: "partial" when others succeeded, else "failed"."""
        if failed:
            self.result = "partial" if succeeded else "failed"

    def step(
        self,
        node: str,
        description: str,
        argv: Sequence[str] | None,
        result: str,
        seconds: float,
        *,
        durable: bool = False,
        **extra: Any,
    ) -> None:
        """Record one step's outcome (nothing is recorded in a dry run), then stop if the lock
        was lost meanwhile: the step is journaled either way. The line goes down the journal's
        open stream at once; `durable` waits until it is on the core node's disk (a step a
        later run must find even if kato is killed right after it, e.g. a role stopped). A step
        a test pauses at (kato/pause.py) is made durable too, so the test reads it there."""
        self.steps += 1
        where = f"{node} {description}"
        if self.journal is not None:
            self.journal.add(
                journal.entry(
                    self.id,
                    "step",
                    node=node,
                    step=description,
                    argv=journal.mask(argv) if argv else None,
                    result=result,
                    seconds=round(seconds, 3),
                    **extra,
                )
            )
            if durable or pause.asked(pause.file_name(where)):
                self.journal.flush()
        if self.lock is not None and self.lock.lost:
            raise LockLost(self.lock.id, self.lock.broken, "was lost to another operation")
        pause.point(where, asked_only=True)  # tests only: kato/pause.py


# The operation this thread of this process runs inside, by core node (None outside any).
_RUNNING: ContextVar[dict[str, Operation] | None] = ContextVar("kato_operation", default=None)


@contextmanager
def operation(
    conns: Connections,
    core: str,
    command: Sequence[str],
    *,
    lock_wait: float = 0.0,
    ttl: float = lock.DEFAULT_TTL,
    dry_run: bool = False,
) -> Iterator[Operation]:
    """Hold the cluster lock and journal the operation; a dry run does neither. Inside another
    operation on the same core node, join it (same lock, same journal, its end records both)."""
    masked = journal.mask(command)
    if dry_run:
        yield Operation(uuid.uuid4().hex[:12], masked, None, None)
        return
    outer = (_RUNNING.get() or {}).get(core)
    if outer is not None:
        yield from _joined(outer, conns)
        return
    held = lock.ClusterLock(conns, core, " ".join(masked), ttl=ttl)
    begin = journal.entry(held.id, "begin", command=masked, owner=held.record["owner"])
    held.acquire(wait=lock_wait, begin=begin)  # the core adds took_over_lock when it did
    writer = Journal(conns, core, link=held.link)  # the lock's program, when it has one
    conns.fence = held.fence
    op = Operation(held.id, masked, writer, held)
    started = time.monotonic()
    outcome = "failed"
    failure: BaseException | None = None
    try:
        if held.taken_over:
            told = took_over(conns, core, held.taken_over)
            op.notes.append(told)
            notice(told)
        token = _RUNNING.set({**(_RUNNING.get() or {}), core: op})
        try:
            yield op
        finally:
            _RUNNING.reset(token)
        outcome = "ok"
    except BaseException as exc:
        outcome = "interrupted" if isinstance(exc, KeyboardInterrupt | Interrupted) else "failed"
        failure = exc
        raise
    finally:
        result = outcome if outcome == "interrupted" else op.result or outcome
        _end(op, writer, held, result, time.monotonic() - started, failure, core)


def _joined(outer: Operation, conns: Connections) -> Iterator[Operation]:
    """The outer operation, its lock fencing this phase's own connections too."""
    if outer.lock is None or conns is outer.lock.conns:
        yield outer
        return
    before, conns.fence = conns.fence, outer.lock.fence
    try:
        yield outer
    finally:
        conns.fence = before


def took_over(conns: Connections, core: str, dead: dict[str, Any]) -> str:
    """What to say when taking over a lock: whose, which operation, and its last journaled
    step (where a re-run picks up)."""
    how = "it was broken" if dead.get("broken") else "its heartbeat had expired"
    said = (
        f"took over the lock of operation {dead.get('id')} ({dead.get('owner')} running "
        f"`{dead.get('command')}`): {how}"
    )
    try:
        entries = conns.call(core, lambda t: journal.read(t, 500))
    except KatoError:
        return said + "; its journal could not be read"
    steps = [
        e for e in entries if e.get("operation") == dead.get("id") and e.get("event") == "step"
    ]
    if not steps:
        return said + "; it journaled no step"
    last = steps[-1]
    return (
        f"{said}; its last journaled step: {last.get('node')}: {last.get('step')} "
        f"({last.get('result')}) at {last.get('time')}"
    )


def _end(
    op: Operation,
    writer: Journal,
    held: lock.ClusterLock,
    result: str,
    seconds: float,
    failure: BaseException | None,
    core: str,
) -> None:
    """End the journal's stream, then release the lock with the end line (and any line the
    stream could not write) in the same call. When the operation failed because the core node
    is gone, do not wait for it to come back (the lock expires after its TTL), and never let
    a failure here hide the one that ended the operation."""
    op_conns = held.conns
    op_conns.fence = None
    core_lost = isinstance(failure, NodeUnreachable) and failure.node == core
    if core_lost:  # neither the stream nor the release waits for the program's answer
        writer.patience = 0.0
        if held.link is not None:
            held.link.close()
    end = journal.entry(op.id, "end", result=result, steps=op.steps, seconds=round(seconds, 3))
    try:
        held.release(
            patience=0.0 if core_lost else lock.PATIENCE,
            journal=writer.detach() + journal.lines(end),
        )
    except KatoError:
        if failure is None:
            raise
