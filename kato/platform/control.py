"""`kato start|stop|restart [platform | ROLE...]`: roles in their order, each waited for.

Start and restart go through the roles in start order (data services first) and wait for each
role's health on every node that carries it before the next role; stop goes in reverse. Each
role is one rollout of the engine: start and stop go wide, a restart rolls one node at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kato import role_definitions
from kato.config import Cluster
from kato.connect import select_nodes
from kato.engine.batches import Batching
from kato.engine.cycle import Command, HealthAnswer, cycle
from kato.engine.rollout import NodeChange, rollout
from kato.engine.session import Session, session
from kato.errors import UsageError
from kato.plan import Plan, PlanOutcome, Step
from kato.role_definitions import ClusterRoles
from kato.roles import Role, in_start_order
from kato.transport.fanout import NodeFailure
from kato.transport.pool import Factory, ssh_factory

ACTIONS = ("start", "stop", "restart")


@dataclass(frozen=True)
class ControlOutcome(PlanOutcome):
    action: str = ""
    definitions: tuple[str, ...] = ()  # per node: where its role definitions come from


def chosen_roles(targets: list[str], roles: dict[str, Role]) -> list[Role]:
    if not targets or targets == ["platform"]:
        return list(in_start_order(roles.values()))
    unknown = [t for t in targets if t not in roles]
    if unknown:
        raise UsageError(
            f"no role named {', '.join(unknown)}",
            hint=f"roles: platform, {', '.join(sorted(roles))}",
        )
    return list(in_start_order(roles[t] for t in targets))


def in_action_order(action: str, roles: list[Role]) -> list[Role]:
    """Start order for start and restart, the reverse for stop."""
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r}")
    return list(reversed(roles)) if action == "stop" else roles


def plan_control(
    cluster: Cluster,
    action: str,
    roles: list[Role],
    names: list[str] | None,
    defined: ClusterRoles | None = None,
) -> Plan:
    """One step per node per role; each node's units are those its own release defines
    (`defined`; the roles given when a node has no definitions of its own)."""
    ordered = in_action_order(action, roles)
    nodes = select_nodes(cluster, names)
    steps = [
        Step(n.name, f"{action} {role.name}", ("systemctl", action, "--", *own.units))
        for role in ordered
        for n in nodes
        if role.name in n.roles
        for own in [_own(defined, n.name, role)]
    ]
    return Plan(f"{action} {', '.join(r.name for r in ordered)}", tuple(steps))


def _own(defined: ClusterRoles | None, node: str, role: Role) -> Role:
    if defined is None or node not in defined.nodes:
        return role
    return defined.of(node).get(role.name, role)


def control(
    cluster: Cluster,
    action: str,
    targets: list[str],
    names: list[str] | None,
    *,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    command: list[str] | None = None,
    factory: Factory = ssh_factory,
) -> ControlOutcome:
    nodes = [n.name for n in select_nodes(cluster, names)]
    succeeded: dict[str, int] = {}
    failed: dict[str, NodeFailure] = {}
    with session(cluster, command or [], lock_wait=lock_wait, factory=factory) as s:
        defined = role_definitions.of_nodes(cluster, s.conns, nodes)  # these connections
        chosen = chosen_roles(targets, defined.known())
        plan = plan_control(cluster, action, chosen, names, defined)
        sources = tuple(defined.sources())
        if dry_run or plan.is_empty:
            return ControlOutcome(plan, dry_run, action=action, definitions=sources)
        for role in in_action_order(action, chosen):
            steps = [st for st in plan.steps if st.description == f"{action} {role.name}"]
            report = rollout(
                s,
                [_change(s, action, _own(defined, st.node, role), st) for st in steps],
                Batching(parallel=cluster.ssh.parallel),
            )
            for node in report.done:
                succeeded[node] = succeeded.get(node, 0) + 1
            failed.update(report.failed_nodes)
            if failed:
                break  # the roles after it need it: they are not reached
        s.op.settle(bool(succeeded), bool(failed))
    return ControlOutcome(plan, False, succeeded, failed, action=action, definitions=sources)


def _change(s: Session, action: str, role: Role, step: Step) -> NodeChange:
    """A restart rolls (never every node of a serving role at once); start and stop go wide.
    The command and the role's health wait (not for stop) are one call on the node
    (engine/cycle.py), whose program tries a start that systemd refused for its start rate
    limit once more after `reset-failed` (role_cycle.rate_limited says why), as the import's
    switch and patch install's restarts do. Nothing to undo: starting or stopping again is
    the way back."""
    roles = () if action == "stop" else (role,)
    health = HealthAnswer(s.conns, step.node, roles)

    def change() -> int:
        started = time.monotonic()
        done = cycle(s.transport(step.node), [Command(step.argv)], roles)
        done.raise_failed(step.node)
        s.op.step(step.node, step.description, step.argv, "ok", time.monotonic() - started)
        health.answer = done
        return 1

    return NodeChange(
        step.node, change, verify=health, restarts=(role,) if action == "restart" else ()
    )
