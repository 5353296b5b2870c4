"""A patch install or revert as the rollout engine's per-node changes: stage the artifacts, apply
(or revert) on every node at once, then restart the affected roles node by node and verify their
health; undo reverts what was applied on that node (restarting the roles again where they had
been restarted). Used by `kato patch install` and `revert`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from kato.engine.batches import Batching
from kato.engine.cycle import Command, Cycled, HealthAnswer, cycle
from kato.engine.cycle import argv as cycle_argv
from kato.engine.cycle import request as cycle_request
from kato.engine.rollout import NodeChange, rollout
from kato.engine.session import Session
from kato.engine.standby import Standby, fence_ahead
from kato.engine.steps import journaled
from kato.plan import Plan, PlanOutcome, Step
from kato.remote.agent import AGENT
from kato.roles import Role
from kato.transport.fanout import NodeFailure


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
        """Every step in order, as --dry-run prints them: the restarts, then the health wait,
        which is the one node call that makes them (role_cycle.py, the request on stdin)."""
        restarts = [step for step, _ in self.restarts()]
        if not restarts:
            return (*self.stage, *self.change)
        names = ", ".join(r.name for r in self.roles)
        are = "is" if len(self.roles) == 1 else "are"
        limit = max(r.health.timeout for r in self.roles)
        request = json.dumps(cycle_request([Command(s.argv) for s in restarts], self.roles))
        wait = Step(
            self.node,
            f"wait until {names} {are} healthy (up to {limit:g}s)",
            cycle_argv(),
            stdin=request,
        )
        return (*self.stage, *self.change, *restarts, wait)


@dataclass(frozen=True)
class RolloutOutcome(PlanOutcome):
    action: str = ""


def plan_of(title: str, works: Sequence[NodeWork]) -> Plan:
    return Plan(title, tuple(s for w in works for s in w.shown()))


def node_change(
    session: Session, work: NodeWork, standbys: list[Standby] | None = None
) -> NodeChange:
    """The engine's view of one node's work. When it can be undone, apply lays the patches on
    every node at once (nothing restarted) and change only restarts the roles, rolling and
    health-gated; a revert (nothing to undo it with) does both in its change. Undo reverts the
    patches applied so far (and the one that failed, which the agent may have half applied),
    and restarts the roles again only where they were restarted on the patched files. The
    restarts and their health wait are one call on the node (engine/cycle.py); when apply ran,
    that call was started there already and waits for its request (engine/standby.py), which
    the node's turn sends. Each standby made is added to `standbys` (the caller cancels those
    never used)."""
    applied, restarted = [0], [False]
    early = bool(work.change and work.undo)
    health = HealthAnswer(session.conns, work.node, work.roles)
    ready: list[Standby] = []

    def apply() -> int:
        transport = session.transport(work.node)
        AGENT.ensure(transport)  # the patch agent's steps and the standby run it
        if work.roles:
            ready.append(
                Standby(transport, [Command(s.argv) for s, _ in work.restarts()], work.roles)
            )
            if standbys is not None:
                standbys.append(ready[0])
        for step in work.change:
            applied[0] += 1
            journaled(session, step)
        return len(work.change)

    def restart() -> None:
        if work.roles:
            waiting, ready[:] = ready[:1], []
            health.answer = restarted_and_waited(session, work, *waiting)

    def change() -> int:
        count = 0 if early else apply()
        restarted[0] = True
        restart()
        return count

    def undo() -> None:
        for standby in ready:
            standby.cancel()
        ready.clear()
        for step in reversed(work.undo[: applied[0]]):
            journaled(session, step)
        if restarted[0]:
            restart()

    def stage() -> None:
        for step in work.stage:
            journaled(session, step)

    return NodeChange(
        work.node,
        change,
        stage=stage if work.stage else None,
        apply=apply if early else None,
        undo=undo if work.undo else None,
        verify=health,
        restarts=work.roles,
    )


def restarted_and_waited(
    session: Session, work: NodeWork, standby: Standby | None = None
) -> Cycled:
    """Restart the roles in order and wait on the node until they are healthy: one call (or one
    request to the node's standby, after the fence check). Each restart is journaled as its
    own step (a failed one as `failed: WHY`, then raised)."""
    steps = [step for step, _ in work.restarts()]
    transport = session.transport(work.node)  # fenced: the node changes only after this
    if standby is not None:
        fence_ahead(session.conns)  # for the next node's turn, while this one restarts
    done = standby.cycle() if standby is not None else None
    if done is None:
        done = cycle(transport, [Command(s.argv) for s in steps], work.roles)
    for i, step in enumerate(steps[: done.ran]):
        failed = done.failed is not None and i == done.failed["index"]
        result = f"failed: {done.failed['error']}" if failed and done.failed else "ok"
        session.op.step(step.node, step.description, step.argv, result, done.seconds[i])
    done.raise_failed(work.node)
    return done


def roll(
    session: Session, works: Sequence[NodeWork], canary: str | None = None
) -> tuple[dict[str, int], dict[str, NodeFailure], tuple[str, ...]]:
    """Through the engine: applied everywhere at once, then restarts one node at a time (canary
    first). Returns succeeded, failed and the nodes not reached (put back if applied)."""
    standbys: list[Standby] = []
    changes = [node_change(session, w, standbys) for w in works]
    try:
        report = rollout(session, changes, Batching(parallel=session.parallel, canary=canary))
    finally:
        for standby in standbys:  # a node never reached, or a rollout cut off (a lost lock)
            standby.cancel()
        for standby in standbys:  # gone before the connections close
            standby.cancel(wait=1.0)
    return report.done, report.failed_nodes, report.not_reached
