"""`kato start|stop|restart [platform | ROLE...]`: roles in their order, each waited for.

Start and restart go through the roles in start order (data services first) and wait for each
role's health check on every node that carries it before the next role; stop goes in reverse.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kato import facts
from kato.config import Cluster
from kato.connect import connections, select_nodes
from kato.errors import NodeUnreachable, UsageError
from kato.operation import operation
from kato.plan import Plan, PlanOutcome, Step, apply_step
from kato.roles import Role, in_start_order, load_roles
from kato.status import roles_directory
from kato.transport.fanout import NodeFailure, fan_out
from kato.transport.pool import Connections

ACTIONS = ("start", "stop", "restart")


@dataclass(frozen=True)
class ControlOutcome(PlanOutcome):
    action: str = ""


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


def plan_control(cluster: Cluster, action: str, roles: list[Role], names: list[str] | None) -> Plan:
    ordered = in_action_order(action, roles)
    nodes = select_nodes(cluster, names)
    steps = [
        Step(n.name, f"{action} {role.name}", ("systemctl", action, "--", *role.units))
        for role in ordered
        for n in nodes
        if role.name in n.roles
    ]
    return Plan(f"{action} {', '.join(r.name for r in ordered)}", tuple(steps))


def wait_healthy(conns: Connections, node: str, role: Role) -> None:
    deadline = time.monotonic() + role.health.timeout
    check = facts.health_check(role.health, timeout=5)
    while True:
        problem = check.gather(conns.get(node))
        if problem is None:
            return
        if time.monotonic() >= deadline:
            raise NodeUnreachable(
                node,
                "health",
                f"{role.name} not healthy within {role.health.timeout:g}s: {problem}",
            )
        time.sleep(0.5)


def control(
    cluster: Cluster,
    action: str,
    targets: list[str],
    names: list[str] | None,
    *,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    command: list[str] | None = None,
) -> ControlOutcome:
    roles = load_roles(roles_directory())
    chosen = chosen_roles(targets, roles)
    plan = plan_control(cluster, action, chosen, names)
    if dry_run or plan.is_empty:
        return ControlOutcome(plan, dry_run, action=action)
    succeeded: dict[str, int] = {}
    failed: dict[str, NodeFailure] = {}
    with (
        connections(cluster) as conns,
        operation(conns, cluster.core, command or [], lock_wait=lock_wait) as op,
    ):
        for role in in_action_order(action, chosen):
            steps = {
                s.node: s
                for s in plan.steps
                if s.description == f"{action} {role.name}" and s.node not in failed
            }

            def one(node: str, role: Role = role, steps: dict[str, Step] = steps) -> int:
                apply_step(conns, op, steps[node])
                if action != "stop":
                    wait_healthy(conns, node, role)
                return 1

            done = fan_out(list(steps), one, cluster.ssh.parallel)
            for node in done.succeeded:
                succeeded[node] = succeeded.get(node, 0) + 1
            failed.update(done.failed)
        op.settle(bool(succeeded), bool(failed))
    return ControlOutcome(plan, False, succeeded, failed, action=action)
