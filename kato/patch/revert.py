"""`kato patch revert NAME [--node N]`: restore the files a patch replaced, byte for byte, run its
revert script, drop the node's record and restart the affected roles, one node at a time."""

from __future__ import annotations

from kato.config import Cluster, NodeConfig
from kato.connect import select_nodes
from kato.engine.session import session
from kato.errors import UsageError
from kato.patch.nodes import NodePatches, agent_step
from kato.patch.repository import load_index
from kato.patch.rollout import NodeWork, RolloutOutcome, plan_of, roll
from kato.patch.status import asked_of_nodes, repository
from kato.repos import RepositoryUnreachable
from kato.roles import Role, in_start_order


def plan_revert(
    node: NodeConfig, state: NodePatches, name: str, roles: dict[str, Role], restart: bool
) -> NodeWork | None:
    """Pure: the node's revert, or None when the patch is neither applied nor half applied."""
    applied = state.applied.get(name)
    if applied is None and name not in state.interrupted:
        return None
    step = agent_step(node.name, f"revert {name}", "revert", name)
    touched = [roles[r] for r in (applied.roles if applied else ()) if r in roles]
    return NodeWork(node.name, change=(step,), roles=in_start_order(touched) if restart else ())


def known_names(cluster: Cluster, repo: str | None) -> tuple[str, ...]:
    """The repository's patch names; none when it is unreadable (a revert needs no repository)."""
    try:
        return load_index(repository(cluster, repo)).names
    except (RepositoryUnreachable, UsageError):
        return ()


def revert(
    cluster: Cluster,
    name: str,
    nodes: list[str] | None,
    *,
    restart: bool = True,
    repo: str | None = None,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    command: list[str] | None = None,
) -> RolloutOutcome:
    chosen = select_nodes(cluster, nodes)
    with session(cluster, command or [], lock_wait=lock_wait, dry_run=dry_run) as s:
        roles, states = asked_of_nodes(cluster, s.conns, chosen)
        on_nodes = {p for s in states.succeeded.values() for p in (*s.applied, *s.interrupted)}
        known = known_names(cluster, repo)
        if name not in on_nodes and name not in known:
            raise UsageError(
                f"no patch named {name} is known or applied",
                hint=f"known patches: {', '.join(sorted({*known, *on_nodes})) or 'none'}",
            )
        works = [
            w
            for n in chosen
            if n.name in states.succeeded
            and (
                w := plan_revert(n, states.succeeded[n.name], name, dict(roles.of(n.name)), restart)
            )
        ]
        plan = plan_of(f"patch revert {name}", works)
        if dry_run or not works:
            return RolloutOutcome(plan, dry_run, failed=dict(states.failed), action="revert")
        done, failed, rest = roll(s, works)
        failed = {**states.failed, **failed}
        s.op.settle(bool(done), bool(failed))
    return RolloutOutcome(plan, False, done, failed, action="revert", not_started=rest)
