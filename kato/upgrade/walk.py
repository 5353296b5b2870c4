"""The steps of an upgrade on one node (stop roles, activate a release, run a migration, start
roles behind their health gate), each journaled, and the role-ordered walks an in-place upgrade
and a rollback make of them: every router stops before any dea, and so on.

The walks go through the rollout engine (kato/engine/rollout.py): one engine rollout per step,
its carriers all at once (the platform is down: nothing to keep serving), each node's *change*
the step and its *verify* the role's health gate, so Ctrl-C, the journal and the per-node
report behave as everywhere else; a step that fails on a node stops the walk there. The
takeover, itself a rollout of one router at a time, runs the per-node steps directly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from kato import datadirs
from kato.config import Cluster
from kato.engine.batches import Batching
from kato.engine.health import wait_healthy
from kato.engine.rollout import NodeChange, rollout
from kato.engine.session import Session
from kato.errors import KatoError, RemoteCommandFailed
from kato.migrations import Migration
from kato.roles import Role, in_start_order
from kato.transport.fanout import NodeFailure
from kato.upgrade import tasks
from kato.upgrade.nodes import run_agent


class WalkFailed(KatoError):
    """A step failed on some nodes: which, in which phase, and what they said."""

    def __init__(self, phase: str, failed: dict[str, NodeFailure]) -> None:
        detail = "; ".join(f"{f.node}: {f.message}" for f in failed.values())
        super().__init__(f"{phase} failed on {', '.join(sorted(failed))}: {detail}")
        self.phase = phase
        self.failed = failed


def carriers(cluster: Cluster, role: str) -> list[str]:
    return [n.name for n in cluster.nodes if role in n.roles]


def cluster_roles(cluster: Cluster, definitions: dict[str, Role]) -> tuple[Role, ...]:
    names = {r for n in cluster.nodes for r in n.roles if r in definitions}
    return in_start_order(definitions[r] for r in names)


# ---- one node -------------------------------------------------------------------------------


def stop_on(s: Session, node: str, role: Role) -> int:
    return _systemctl(s, node, "stop", role)


def start_on(s: Session, node: str, role: Role) -> int:
    """Start the role's units (its health gate is the caller's verify)."""
    return _systemctl(s, node, "start", role)


def _systemctl(s: Session, node: str, verb: str, role: Role) -> int:
    argv = ("systemctl", verb, "--", *role.units)
    started = time.monotonic()
    s.transport(node).run(argv, timeout=120)
    s.op.step(node, f"{verb} {role.name}", argv, "ok", time.monotonic() - started)
    return 1


def activate_on(
    s: Session, node: str, version: str, new: dict[str, Role], old: dict[str, Role]
) -> int:
    """Hooks, units, previous := current, current := version, on one node."""
    where = datadirs.locations(s.transport(node))
    plan = activation_plan(s.cluster.node(node).roles, new, old, where)
    started = time.monotonic()
    said = run_agent(s.transport(node), "activate", version, json.dumps(plan))
    s.op.step(node, said.strip(), None, "ok", time.monotonic() - started)
    return 1


def activation_plan(
    roles: Sequence[str], new: dict[str, Role], old: dict[str, Role], where: datadirs.Locations
) -> dict[str, Any]:
    """What the agent's `activate` needs: the new units, the old ones, and each role's
    `KATO_DATA_*` hook environment from the node's record, as `kato install` passes it."""
    return {
        "roles": {r: list(new[r].units) for r in roles if r in new},
        "old_units": [u for r in roles if r in old for u in old[r].units],
        "env": {r: datadirs.hook_env(where, new[r]) for r in roles if r in new},
    }


def migrate_on(s: Session, node: str, version: str, migration: Migration) -> int:
    """One migration with the release's code on one node, recorded as a task."""
    result, started, seconds = tasks.run_in_release(
        s.transport(node), version, migration.role, migration.run
    )
    done = tasks.Task(
        s.op.id,
        version,
        node,
        migration.role,
        migration.run,
        round(started, 3),
        round(seconds, 3),
        result.status,
        tasks.last_line(result),
    )
    tasks.record(s.transport(s.cluster.core), done)
    outcome = "ok" if result.ok else f"exit {result.status}"
    s.op.step(node, f"migration {migration.name}", migration.run, outcome, seconds)
    if not result.ok:
        raise RemoteCommandFailed(node, migration.run, result.status, result.stderr)
    return 1


# ---- the cluster, role by role, through the engine -----------------------------------------


def _step(
    s: Session,
    nodes: Sequence[str],
    work: Callable[[str], int],
    phase: str,
    *,
    gate: Role | None = None,
    tolerate: bool = False,
) -> dict[str, NodeFailure]:
    """One step on `nodes`, all at once, as one engine rollout (verify: `gate`'s health)."""
    changes = [
        NodeChange(
            node,
            partial(work, node),
            verify=None if gate is None else partial(wait_healthy, s.conns, node, [gate]),
        )
        for node in nodes
    ]
    report = rollout(s, changes, Batching(s.parallel, serial=max(1, len(changes))))
    failed = dict(report.failed_nodes)
    if failed and not tolerate:
        raise WalkFailed(phase, failed)
    return failed


def stop(
    s: Session,
    roles: Sequence[Role],
    tolerate: bool = False,
    nodes: Sequence[str] | None = None,
) -> dict[str, NodeFailure]:
    """Stop `roles` in reverse start order on every node carrying them (or those of `nodes`)."""
    failed: dict[str, NodeFailure] = {}
    for role in reversed(in_start_order(roles)):
        s.progress.step(f"stop {role.name}")
        targets = [n for n in carriers(s.cluster, role.name) if nodes is None or n in nodes]
        work = partial(stop_on, s, role=role)
        failed |= _step(s, targets, work, f"stop {role.name}", tolerate=tolerate)
    return failed


def activate(
    s: Session,
    version: str,
    new: dict[str, Role],
    old: dict[str, Role],
    nodes: Sequence[str] | None = None,
) -> None:
    """On every node (or those of `nodes`) at once: activate `version`."""
    s.progress.step(f"activate {version}")
    targets = list(nodes or [n.name for n in s.cluster.nodes])
    work = partial(activate_on, s, version=version, new=new, old=old)
    _step(s, targets, work, f"activate {version}")


def migrate(s: Session, version: str, migrations: Sequence[Migration]) -> None:
    """Each migration on every node carrying its role, with the new release's code."""
    for migration in migrations:
        s.progress.step(f"migrate: {migration.name}")
        work = partial(migrate_on, s, version=version, migration=migration)
        _step(s, carriers(s.cluster, migration.role), work, f"migration {migration.name}")


def start(s: Session, roles: Sequence[Role], nodes: Sequence[str] | None = None) -> None:
    """Start `roles` in order; each must pass its health gate on every node before the next
    (the engine's verify: the one health wait of kato/engine/health.py)."""
    for role in in_start_order(roles):
        s.progress.step(f"start {role.name} (health gate: {role.health.timeout:g}s)")
        targets = [n for n in carriers(s.cluster, role.name) if nodes is None or n in nodes]
        work = partial(start_on, s, role=role)
        _step(s, targets, work, f"start {role.name}", gate=role)
