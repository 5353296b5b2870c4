"""Plans and NodeChanges made of Steps: each step applied in order and journaled, failures too."""

from __future__ import annotations

from collections.abc import Sequence

from kato.engine.batches import Batching
from kato.engine.rollout import NodeChange, rollout
from kato.engine.session import Session
from kato.plan import Plan, Step, apply_step
from kato.roles import Role
from kato.transport.fanout import NodeFailure


def journaled(session: Session, step: Step) -> None:
    """Apply one step; the journal records its result, a failure included."""
    try:
        apply_step(session.conns, session.op, step)
    except Exception as exc:
        session.op.step(step.node, step.description, step.argv, f"failed: {exc}", 0.0)
        raise


def from_steps(
    session: Session,
    node: str,
    change: Sequence[Step],
    *,
    stage: Sequence[Step] = (),
    undo: Sequence[Step] = (),
    restarts: tuple[Role, ...] = (),
) -> NodeChange:
    """A node's change as steps: `stage` first (with every other node's), then `change`;
    `undo` (if any) runs in full when the change or its verify failed."""

    def run(steps: Sequence[Step]) -> int:
        for step in steps:
            journaled(session, step)
        return len(steps)

    return NodeChange(
        node,
        lambda: run(change),
        stage=(lambda: run(stage)) if stage else None,
        undo=(lambda: run(undo)) if undo else None,
        restarts=restarts,
    )


def apply_plan(
    session: Session, plan: Plan, staged: tuple[str, ...] = ()
) -> tuple[dict[str, int], dict[str, NodeFailure]]:
    """A whole plan through the engine, node by node: the steps whose description starts with
    one of `staged` (uploads, checks: nothing live) first on every node, then the rest, wide
    (nothing is restarted here); a node that fails stops the rollout after its batch. Returns
    the steps done per node and the failures."""
    changes = []
    for node in plan.nodes:
        steps = plan.for_node(node)
        stage = [st for st in steps if staged and st.description.startswith(staged)]
        rest = [st for st in steps if st not in stage]
        changes.append(from_steps(session, node, rest, stage=stage))
    report = rollout(session, changes, Batching(parallel=session.parallel))
    return {n: len(plan.for_node(n)) for n in report.done}, report.failed_nodes
