"""`kato run`: a command across nodes, all at once or K at a time, optionally waiting for each
batch to answer again and be healthy before the next (a rolling reboot)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kato.config import Cluster, NodeConfig
from kato.connect import connections, select_nodes
from kato.errors import LockLost, NodeUnreachable, RemoteCommandFailed, UsageError
from kato.operation import operation
from kato.roles import Role, in_start_order, load_roles
from kato.status import role_status, roles_directory
from kato.transport.base import CommandResult, Transport
from kato.transport.fanout import FanOut, NodeFailure, failure, fan_out
from kato.transport.pool import Connections

WAIT_TIMEOUT = 300.0
SETTLE_POLLS = 3  # healthy this many times in a row, when the boot id did not change


@dataclass(frozen=True)
class RunPlan:
    argv: tuple[str, ...]
    batches: tuple[tuple[str, ...], ...]
    wait_healthy: bool
    wait_timeout: float = WAIT_TIMEOUT


@dataclass(frozen=True)
class RunOutcome:
    plan: RunPlan
    results: dict[str, CommandResult]
    failed: dict[str, NodeFailure]
    skipped: tuple[str, ...]
    dry_run: bool


def plan_run(
    nodes: Sequence[NodeConfig],
    argv: Sequence[str],
    serial: int | None,
    wait_healthy: bool,
    wait_timeout: float = WAIT_TIMEOUT,
) -> RunPlan:
    if not argv:
        raise UsageError("no command given", hint="put it after --, e.g. kato run -- uptime")
    if not nodes:
        raise UsageError("no node matches --node/--role")
    if serial is not None and serial < 1:
        raise UsageError(f"--serial must be at least 1, not {serial}")
    if not 0 < wait_timeout < float("inf"):
        raise UsageError(f"--wait-timeout must be a duration above 0, not {wait_timeout:g}")
    size = serial or len(nodes)
    names = [n.name for n in nodes]
    batches = tuple(tuple(names[i : i + size]) for i in range(0, len(names), size))
    return RunPlan(tuple(argv), batches, wait_healthy, wait_timeout)


def run(
    cluster: Cluster,
    argv: Sequence[str],
    *,
    names: list[str] | None = None,
    roles: list[str] | None = None,
    serial: int | None = None,
    wait_healthy: bool = False,
    wait_timeout: float = WAIT_TIMEOUT,
    lock_wait: float = 0.0,
    dry_run: bool = False,
    command: Sequence[str] = (),
    health: Callable[[Transport, NodeConfig], None] | None = None,
) -> RunOutcome:
    plan = plan_run(select_nodes(cluster, names, roles), argv, serial, wait_healthy, wait_timeout)
    if wait_healthy and health is None:
        health = roles_healthy(load_roles(roles_directory()))
    if dry_run:
        return RunOutcome(plan, {}, {}, (), dry_run=True)
    results: dict[str, CommandResult] = {}
    failed: dict[str, NodeFailure] = {}
    with (
        connections(cluster) as conns,
        operation(conns, cluster.core, command, lock_wait=lock_wait) as op,
    ):
        for batch in plan.batches:
            done = _run_batch(cluster, conns, plan, batch, health)
            results.update(done.succeeded)
            failed.update(done.failed)
            for node, res in done.succeeded.items():
                op.step(node, "run", plan.argv, f"exit {res.status}", res.seconds)
            for node, why in done.failed.items():
                op.step(node, "run", plan.argv, f"failed in {why.phase}: {why.message}", 0.0)
            if done.failed and plan.wait_healthy:
                break  # a rolling change stops at the first node that does not come back
        op.settle(bool(results), bool(failed))
    ran = set(results) | set(failed)
    skipped = tuple(n for b in plan.batches for n in b if n not in ran)
    return RunOutcome(plan, results, failed, skipped, dry_run=False)


def _run_batch(
    cluster: Cluster,
    conns: Connections,
    plan: RunPlan,
    batch: Sequence[str],
    health: Callable[[Transport, NodeConfig], None] | None,
) -> FanOut[CommandResult]:
    def one(node: str) -> CommandResult:
        transport = conns.get(node)
        boot_id = _boot_id(transport) if plan.wait_healthy else ""
        started = time.monotonic()
        try:
            result = transport.run(plan.argv, check=False)
        except NodeUnreachable as exc:
            if not plan.wait_healthy or exc.phase == "command":  # a timeout is no reboot
                raise
            # the command took the node down with it (a reboot): its answer is coming back
            result = CommandResult(
                node, plan.argv, -1, "", "connection closed by the node", time.monotonic() - started
            )
        if result.status not in (0, -1) or (result.status == -1 and not plan.wait_healthy):
            raise RemoteCommandFailed(node, plan.argv, result.status, result.stderr)
        if plan.wait_healthy:
            wait_until_healthy(cluster, conns, node, boot_id, health, plan.wait_timeout)
        return result

    return fan_out(list(batch), one, cluster.ssh.parallel)


def roles_healthy(known: dict[str, Role]) -> Callable[[Transport, NodeConfig], None]:
    """A health gate: every role of the node has its units active and passes its check."""

    def check(transport: Transport, node: NodeConfig) -> None:
        for role in in_start_order(known[r] for r in node.roles if r in known):
            found = role_status(transport, role)
            if not found.ok:
                raise NodeUnreachable(node.name, "health", f"{role.name}: {found.health}")

    return check


def _boot_id(transport: Transport) -> str:
    return transport.run(("cat", "/proc/sys/kernel/random/boot_id"), timeout=30).stdout.strip()


def wait_until_healthy(
    cluster: Cluster,
    conns: Connections,
    node: str,
    boot_id: str,
    health: Callable[[Transport, NodeConfig], None] | None,
    timeout: float = WAIT_TIMEOUT,
) -> None:
    """Wait until the node answers, its systemd is up and its roles are healthy: at once when
    it booted again, or after SETTLE_POLLS healthy answers in a row when it did not (so a node
    that has only begun to shut down is never taken for healthy)."""
    deadline = time.monotonic() + timeout
    streak, last = 0, ""
    while time.monotonic() < deadline:
        try:
            transport = conns.get(node)
            state = transport.run(
                ("systemctl", "is-system-running", "--wait"), check=False, timeout=60
            ).stdout.strip()
            if state not in ("running", "degraded"):
                raise NodeUnreachable(node, "health", f"systemd is {state}")
            if health is not None:
                health(transport, cluster.node(node))
            rebooted = _boot_id(transport) != boot_id
            streak += 1
            if rebooted or streak >= SETTLE_POLLS:
                return
        except LockLost:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = failure(node, exc).message
            streak = 0
            conns.drop(node)
        time.sleep(1.0)
    raise NodeUnreachable(node, "health", f"not healthy within {timeout:g}s ({last})")
