"""The role-ordered walks of an upgrade: stop roles cluster-wide in reverse start order,
activate a release on every node, run migrations, start roles cluster-wide in start order
behind the health gate. Each step is journaled.

These go role by role across the cluster (every router stops before any dea...), which is the
order an in-place upgrade needs; walks that go node by node (the takeover's routers) use the
rollout engine (kato/engine/rollout.py) instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

from kato.config import Cluster
from kato.engine.health import wait_healthy
from kato.errors import KatoError, RemoteCommandFailed
from kato.migrations import Migration
from kato.operation import Operation
from kato.progress import Progress
from kato.roles import Role, in_start_order
from kato.transport.fanout import NodeFailure, fan_out
from kato.transport.pool import Connections
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


def _each(
    cluster: Cluster,
    nodes: Sequence[str],
    work: Callable[[str], int],
    phase: str,
    tolerate: bool = False,
) -> dict[str, NodeFailure]:
    done = fan_out(list(nodes), work, cluster.ssh.parallel)
    if done.failed and not tolerate:
        raise WalkFailed(phase, dict(done.failed))
    return dict(done.failed)


def stop(
    cluster: Cluster,
    conns: Connections,
    op: Operation,
    roles: Sequence[Role],
    progress: Progress,
    tolerate: bool = False,
    nodes: Sequence[str] | None = None,
) -> dict[str, NodeFailure]:
    """Stop `roles` in reverse start order on every node carrying them (or those of `nodes`)."""
    failed: dict[str, NodeFailure] = {}
    for role in reversed(in_start_order(roles)):
        progress.step(f"stop {role.name}")

        def one(node: str, role: Role = role) -> int:
            argv = ("systemctl", "stop", "--", *role.units)
            started = time.monotonic()
            conns.get(node).run(argv, timeout=120)
            op.step(node, f"stop {role.name}", argv, "ok", time.monotonic() - started)
            return 1

        targets = [n for n in carriers(cluster, role.name) if nodes is None or n in nodes]
        failed |= _each(cluster, targets, one, f"stop {role.name}", tolerate)
    return failed


def activate(
    cluster: Cluster,
    conns: Connections,
    op: Operation,
    version: str,
    new: dict[str, Role],
    old: dict[str, Role],
    progress: Progress,
    nodes: Sequence[str] | None = None,
) -> None:
    """On every node (in parallel): hooks, units, previous := current, current := version."""
    progress.step(f"activate {version}")

    def one(node: str) -> int:
        roles = cluster.node(node).roles
        plan = {
            "roles": {r: list(new[r].units) for r in roles if r in new},
            "old_units": [u for r in roles if r in old for u in old[r].units],
        }
        started = time.monotonic()
        said = run_agent(conns.get(node), "activate", version, json.dumps(plan))
        op.step(node, said.strip(), None, "ok", time.monotonic() - started)
        return 1

    _each(cluster, nodes or [n.name for n in cluster.nodes], one, f"activate {version}")


def migrate(
    cluster: Cluster,
    conns: Connections,
    op: Operation,
    version: str,
    migrations: Sequence[Migration],
    progress: Progress,
) -> None:
    """Each migration on every node carrying its role, with the new release's code."""
    for migration in migrations:
        progress.step(f"migrate: {migration.name}")

        def one(node: str, migration: Migration = migration) -> int:
            result, started, seconds = tasks.run_in_release(
                conns.get(node), version, migration.role, migration.run
            )
            done = tasks.Task(
                op.id,
                version,
                node,
                migration.role,
                migration.run,
                round(started, 3),
                round(seconds, 3),
                result.status,
                tasks.last_line(result),
            )
            tasks.record(conns.get(cluster.core), done)
            op.step(
                node,
                f"migration {migration.name}",
                migration.run,
                "ok" if result.ok else f"exit {result.status}",
                seconds,
            )
            if not result.ok:
                raise RemoteCommandFailed(node, migration.run, result.status, result.stderr)
            return 1

        _each(cluster, carriers(cluster, migration.role), one, f"migration {migration.name}")


def start(
    cluster: Cluster,
    conns: Connections,
    op: Operation,
    roles: Sequence[Role],
    progress: Progress,
    nodes: Sequence[str] | None = None,
    gate: bool = True,
) -> None:
    """Start `roles` in order; each must pass its health gate on every node before the next
    (the one health wait of kato/engine/health.py; `gate=False` leaves it to the caller)."""
    for role in in_start_order(roles):
        progress.step(f"start {role.name} (health gate: {role.health.timeout:g}s)")
        targets = [n for n in carriers(cluster, role.name) if nodes is None or n in nodes]

        def one(node: str, role: Role = role) -> int:
            argv = ("systemctl", "start", "--", *role.units)
            started = time.monotonic()
            conns.get(node).run(argv, timeout=120)
            if gate:
                wait_healthy(conns, node, [role])
            op.step(node, f"start {role.name}", argv, "ok", time.monotonic() - started)
            return 1

        _each(cluster, targets, one, f"start {role.name}")
