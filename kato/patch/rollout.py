"""Roll a change over nodes: stage everywhere in parallel, then change node by node with the
affected roles restarted and their health waited for; the first failure is undone on its node
and stops the rollout. Used by `kato patch install` and `kato patch revert`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kato import facts
from kato.errors import KatoError, NodeUnreachable
from kato.operation import Operation
from kato.plan import Plan, PlanOutcome, Step, apply_step
from kato.platform.control import wait_healthy
from kato.roles import Role
from kato.transport.fanout import NodeFailure, failure, fan_out
from kato.transport.pool import Connections


@dataclass(frozen=True)
class NodeWork:
    """One node's part: stage (no change), change (undone by undo[i] for change[i]), restarts."""

    node: str
    stage: tuple[Step, ...] = ()
    change: tuple[Step, ...] = ()
    undo: tuple[Step, ...] = ()
    roles: tuple[Role, ...] = ()  # restarted in this order after the change; none: no restart

    def restarts(self) -> list[tuple[Step, Role]]:
        return [
            (Step(self.node, f"restart {r.name}", ("systemctl", "restart", "--", *r.units)), r)
            for r in self.roles
        ]

    def shown(self) -> tuple[Step, ...]:
        """Every step in order, with the health waits, as --dry-run prints them."""
        waits: list[Step] = []
        for step, role in self.restarts():
            check = facts.health_check(role.health, timeout=5)
            wait = f"wait until {role.name} is healthy (up to {role.health.timeout:g}s)"
            waits += [step, Step(self.node, wait, check.argv)]
        return (*self.stage, *self.change, *waits)


@dataclass(frozen=True)
class RolloutOutcome(PlanOutcome):
    action: str = ""
    not_started: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def exit_code(self) -> int:
        """3 when the rollout is partial: a node failed while others changed or never started."""
        if not self.failed:
            return 0
        if self.succeeded or self.not_started:
            return 3
        codes = {f.exit_code for f in self.failed.values()}
        return 5 if codes == {5} else 1


def plan_of(title: str, works: Sequence[NodeWork]) -> Plan:
    return Plan(title, tuple(s for w in works for s in w.shown()))


def journaled(conns: Connections, op: Operation, step: Step) -> None:
    try:
        apply_step(conns, op, step)
    except Exception as exc:
        op.step(step.node, step.description, step.argv, f"failed: {exc}", 0.0)
        raise


class StepFailed(KatoError):
    """A node's change failed in a phase; `undone` says what was put back."""

    def __init__(self, cause: NodeFailure, phase: str, undone: str) -> None:
        super().__init__(f"{cause.message}; {undone}")
        self.cause = cause
        self.phase = phase


def run_node(conns: Connections, op: Operation, work: NodeWork) -> int:
    done, phase = 0, "change"
    try:
        for step in work.change:
            journaled(conns, op, step)
            done += 1
        for step, role in work.restarts():
            phase = "restart"
            journaled(conns, op, step)
            phase = "health"
            wait_healthy(conns, work.node, role)
    except Exception as exc:
        cause = failure(work.node, exc)
        raise StepFailed(cause, phase, undo_node(conns, op, work, done)) from exc
    return len(work.change)


def undo_node(conns: Connections, op: Operation, work: NodeWork, done: int) -> str:
    """Undo the change steps that ran (and the one that failed), restart, wait: best effort."""
    if not work.undo:
        return "nothing to undo: run the command again once the cause is fixed"
    try:
        for step in reversed(work.undo[: done + 1]):
            journaled(conns, op, step)
        for step, role in work.restarts():
            journaled(conns, op, step)
            wait_healthy(conns, work.node, role)
    except NodeUnreachable as exc:
        return f"undoing it failed too ({exc.phase}: {exc.detail}): re-run the command later"
    except Exception as exc:
        return f"undoing it failed too ({exc}): re-run the command later"
    return "undone on this node"


def as_failure(node: str, exc: BaseException) -> NodeFailure:
    if isinstance(exc, StepFailed):
        return NodeFailure(node, exc.phase, exc.message, exc.cause.exit_code)
    return failure(node, exc)


def rollout(
    conns: Connections,
    op: Operation,
    works: Sequence[NodeWork],
    parallel: int,
    *,
    serial: bool,
) -> tuple[dict[str, int], dict[str, NodeFailure], tuple[str, ...]]:
    """Stage in parallel, then change: one node at a time when `serial` (stop at the first
    failure), else the first node alone and the rest in parallel. Returns succeeded, failed and
    the nodes never started."""
    by_node = {w.node: w for w in works}

    def stage(node: str) -> int:
        for step in by_node[node].stage:
            journaled(conns, op, step)
        return len(by_node[node].stage)

    def attempt(node: str) -> int | NodeFailure:
        try:
            return run_node(conns, op, by_node[node])
        except Exception as exc:  # reported per node with its phase, never swallowed
            return as_failure(node, exc)

    staged = fan_out([w.node for w in works if w.stage], stage, parallel)
    failed = {n: NodeFailure(n, "upload", f.message, f.exit_code) for n, f in staged.failed.items()}
    order = [w for w in works if w.node not in failed]
    succeeded: dict[str, int] = {}
    batches = [[w] for w in order] if serial else [order[:1], order[1:]]
    for number, batch in enumerate(batches):
        done = fan_out([w.node for w in batch], attempt, parallel)
        results = {
            **done.succeeded,
            **{n: as_failure(n, KatoError(f.message)) for n, f in done.failed.items()},
        }
        for node, result in results.items():
            if isinstance(result, NodeFailure):
                failed[node] = result
            else:
                succeeded[node] = result
        if any(isinstance(r, NodeFailure) for r in results.values()):
            return succeeded, failed, tuple(w.node for b in batches[number + 1 :] for w in b)
    return succeeded, failed, ()
