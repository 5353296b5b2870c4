"""The one rollout engine every change that walks nodes goes through.

Each node's part is a NodeChange: *stage* (run on every node in parallel first; touches nothing
live), *apply* (optional: the part of the change that is not live until the change's restart,
e.g. files laid beside what runs; made on every node in parallel after staging), *change*,
*verify* (by default the health of the roles it restarts, each with its own timeout) and *undo*.
The engine stages everywhere, applies everywhere, then changes in batches (see batches.py),
stops after the first batch in which a node's change or verify failed, undoes that node, and
reports every node: done, undone, failed (with its phase) or not reached. A node applied but
never changed is undone too (it is reported not reached, or failed when that undo fails); a
failed apply undoes every node applied. Ctrl-C lets the nodes in flight finish, undoes them
(and every node applied), and raises Interrupted with the report; one that comes between two
steps (after a batch, before the next) stops before the next, and undoes every node applied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from threading import Event

from kato.engine.batches import Batching, cut
from kato.engine.health import wait_healthy
from kato.engine.parallel import ctrl_c, in_parallel, shielded
from kato.engine.report import (
    CHANGE,
    DONE,
    FAILED,
    HEALTH,
    NOT_REACHED,
    STAGE,
    UNDONE,
    NodeResult,
    RolloutReport,
)
from kato.engine.session import Session
from kato.errors import Interrupted, LockLost
from kato.roles import Role
from kato.transport.fanout import failure


@dataclass(frozen=True)
class NodeChange:
    """One node's part of a change. `change` returns a count for the report (e.g. patches
    applied). `undo` puts the node back after its change or verify failed (or on Ctrl-C); the
    roles are verified again after it. `verify` replaces the default health wait."""

    node: str
    change: Callable[[], int]
    stage: Callable[[], object] | None = None
    undo: Callable[[], object] | None = None
    verify: Callable[[], object] | None = None
    restarts: tuple[Role, ...] = ()  # roles the change restarts: batch size and health
    label: str = ""  # when a node has several changes (e.g. one per role): what this one is
    apply: Callable[[], int] | None = None  # undone by `undo` too, which then restarts nothing

    @property
    def key(self) -> str:
        """How the report names it: the node, or `node label`."""
        return f"{self.node} {self.label}" if self.label else self.node


def rollout(
    session: Session,
    changes: Sequence[NodeChange],
    batching: Batching,
    *,
    undo_all: bool = False,
) -> RolloutReport:
    """Stage, then change batch by batch; see the module docstring. With `undo_all` a failure
    undoes every node changed so far, newest first (a change that must be all or nothing)."""
    by_node = {c.key: c for c in changes}
    batches = cut(batching, [(c.key, c.restarts) for c in changes])
    stop = Event()  # Ctrl-C while no step runs (between two batches): stop before the next
    with ctrl_c(stop.set):
        session.begin()
        report = _walk(session, changes, by_node, batches, batching.parallel, undo_all, stop)
    if report.interrupted:
        raise Interrupted(report.summary("interrupted"), hint=report.hint()) from None
    session.op.settle(bool(report.done), bool(report.failed_nodes))
    return report


def _walk(
    session: Session,
    changes: Sequence[NodeChange],
    by_node: Mapping[str, NodeChange],
    batches: Sequence[Sequence[str]],
    parallel: int,
    undo_all: bool,
    stop: Event,
) -> RolloutReport:
    staging = [c.key for c in changes if c.stage is not None and not stop.is_set()]
    staged = in_parallel(staging, lambda n: _stage(by_node[n]), parallel)
    _raise_lost(staged.errors)
    results = {n: _failed(n, STAGE, exc) for n, exc in staged.errors.items()}
    interrupted, done_order = staged.interrupted or stop.is_set(), list[str]()
    applied: dict[str, int] = {}
    if not interrupted and not results:
        interrupted = _apply(session, changes, parallel, results, applied) or stop.is_set()
    for batch in batches:
        interrupted = interrupted or stop.is_set()
        if interrupted or any(r.state != DONE for r in results.values()):
            break
        ran = in_parallel(
            batch, lambda n: _change(session, by_node[n], applied.get(n, 0)), parallel
        )
        _raise_lost(ran.errors)
        results.update({n: _failed(n, CHANGE, exc) for n, exc in ran.errors.items()})
        results.update(ran.values)
        done_order += [n for n in batch if n in ran.values and ran.values[n].state == DONE]
        if ran.interrupted:
            interrupted = True
            flying = [n for n in batch if n in done_order or n in ran.cut]
            for node in reversed(flying):
                was = results.get(node, NodeResult(node, FAILED, CHANGE))
                results[node] = _undo_shielded(session, by_node[node], was, "interrupted")
                done_order = [n for n in done_order if n != node]
    unchanged = [n for n in applied if n not in results]  # applied, never changed: put back
    results.update(_undo_applied(session, [by_node[n] for n in unchanged], applied))
    if undo_all and any(r.state in (FAILED, UNDONE) for r in results.values()):
        for node in reversed(done_order):
            results[node] = _undo_shielded(session, by_node[node], results[node], OTHERS_FAILED)
    return RolloutReport(
        tuple(results.get(c.key, NodeResult(c.key, NOT_REACHED)) for c in changes),
        interrupted or stop.is_set(),
    )


OTHERS_FAILED = "another node failed"


def _raise_lost(errors: Mapping[str, BaseException]) -> None:
    """A lost cluster lock is no node's failure: it stops the whole rollout, undoing nothing
    (every command on a node is fenced by then)."""
    lost = [exc for exc in errors.values() if isinstance(exc, LockLost)]
    if lost:
        raise lost[0]


def _apply(
    session: Session,
    changes: Sequence[NodeChange],
    parallel: int,
    results: dict[str, NodeResult],
    applied: dict[str, int],
) -> bool:
    """Apply on every node at once; a failure there undoes that node (the others applied are
    put back after the batches, which then do not run). Whether Ctrl-C came."""
    by_node = {c.key: c for c in changes if c.apply is not None}
    ran = in_parallel(list(by_node), lambda n: by_node[n].apply(), parallel)  # type: ignore[misc]
    _raise_lost(ran.errors)
    applied.update(ran.values)
    applied.update({n: 0 for n in (*ran.cut, *ran.errors)})  # maybe half applied: undone too
    for node, exc in ran.errors.items():
        results[node] = _undo_failed_apply(session, by_node[node], exc)
    return ran.interrupted


def _undo_failed_apply(session: Session, change: NodeChange, exc: Exception) -> NodeResult:
    why = failure(change.key, exc)
    was = NodeResult(change.key, FAILED, CHANGE)
    return shielded(lambda: _undo(session, change, was, why.message, CHANGE, why.exit_code))


def _undo_applied(
    session: Session, changes: Sequence[NodeChange], applied: Mapping[str, int]
) -> dict[str, NodeResult]:
    """Undo, all at once and shielded from Ctrl-C, the nodes applied but never changed: each is
    not reached when that worked, failed (never hidden) when it did not."""

    def one(change: NodeChange) -> NodeResult:
        was = NodeResult(change.key, NOT_REACHED, CHANGE, count=applied[change.key])
        done = _undo(session, change, was, "", CHANGE, 0)
        if done.state == UNDONE:
            return NodeResult(change.key, NOT_REACHED, undo=APPLIED_UNDONE)
        return done

    if not changes:
        return {}
    by_node = {c.key: c for c in changes}
    ran = shielded(lambda: in_parallel(list(by_node), lambda n: one(by_node[n]), len(by_node)))
    return ran.values


APPLIED_UNDONE = "applied, then put back: the rollout stopped before this node"


def _stage(change: NodeChange) -> None:
    if change.stage is not None:
        change.stage()


def _failed(node: str, phase: str, exc: BaseException) -> NodeResult:
    why = failure(node, exc)
    return NodeResult(node, FAILED, phase, why.message, why.exit_code)


def _undo_shielded(session: Session, change: NodeChange, was: NodeResult, why: str) -> NodeResult:
    """Undo a node that had changed (Ctrl-C, or all or nothing): a second Ctrl-C cannot cut it.
    Nothing failed on it, so it has no phase: it is shown `undone (WHY)`."""
    return shielded(lambda: _undo(session, change, was, why, None, 1))


def _change(session: Session, change: NodeChange, applied: int = 0) -> NodeResult:
    phase, count = CHANGE, applied
    try:
        count += change.change()
        phase = HEALTH
        _verify(session, change)
    except LockLost:
        raise  # fenced: no more commands on any node, so nothing to undo here either
    except Exception as exc:  # reported per node with its phase, never swallowed
        why = failure(change.key, exc)
        was = NodeResult(change.key, FAILED, phase, count=count)
        return _undo(session, change, was, why.message, phase, why.exit_code)
    return NodeResult(change.key, DONE, count=count)


def _verify(session: Session, change: NodeChange) -> None:
    if change.verify is not None:
        change.verify()
    elif change.restarts:
        wait_healthy(session.conns, change.node, change.restarts)


def _undo(
    session: Session, change: NodeChange, was: NodeResult, why: str, phase: str | None, code: int
) -> NodeResult:
    """Undo the node; the result says what failed and whether undoing it worked (never hidden)."""
    if change.undo is None:
        return NodeResult(change.key, FAILED, phase, why, code, was.count, "nothing to undo")
    try:
        change.undo()
        _verify(session, change)
    except Exception as exc:  # an undo that fails is reported, not raised over the first error
        detail = failure(change.key, exc).message
        undo = f"undoing it failed too ({detail}): see the node, then run it again"
        return NodeResult(change.key, FAILED, phase, why, code or 1, was.count, undo)
    return NodeResult(change.key, UNDONE, phase, why, code, was.count, "undone on this node")
