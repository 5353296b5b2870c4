"""`kato run`: a command across nodes, all at once or K at a time; with --wait-healthy a rolling
change through the engine: each batch must answer again and be healthy before the next, and
the first that does not stops it (a rolling reboot)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from kato import role_definitions
from kato.config import Cluster, NodeConfig
from kato.connect import select_nodes
from kato.engine.batches import Batching
from kato.engine.health import boot_id, wait_back
from kato.engine.rollout import NodeChange, rollout
from kato.engine.session import Session, session
from kato.errors import NodeUnreachable, RemoteCommandFailed, UsageError
from kato.role_definitions import ClusterRoles
from kato.roles import in_start_order
from kato.transport.base import CommandResult
from kato.transport.fanout import NodeFailure, fan_out

WAIT_TIMEOUT = 300.0


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
) -> RunOutcome:
    plan = plan_run(select_nodes(cluster, names, roles), argv, serial, wait_healthy, wait_timeout)
    if dry_run:
        return RunOutcome(plan, {}, {}, (), dry_run=True)
    with session(cluster, command, lock_wait=lock_wait) as s:
        s.begin()  # the lock before the first node runs anything
        if wait_healthy:
            nodes = [n for batch in plan.batches for n in batch]
            results, failed = _rolling(s, plan, role_definitions.of_nodes(cluster, s.conns, nodes))
        else:
            results, failed = _all(s, plan)
        s.op.settle(bool(results), bool(failed))
    ran = set(results) | set(failed)
    skipped = tuple(n for b in plan.batches for n in b if n not in ran)
    return RunOutcome(plan, results, failed, skipped, dry_run=False)


def _all(s: Session, plan: RunPlan) -> tuple[dict[str, CommandResult], dict[str, NodeFailure]]:
    """Batch after batch, whatever failed: a command, not a change that must stop."""
    results: dict[str, CommandResult] = {}
    failed: dict[str, NodeFailure] = {}
    for batch in plan.batches:
        done = fan_out(list(batch), lambda n: _command(s, plan, n), s.parallel)
        results.update(done.succeeded)
        failed.update(done.failed)
        for node, res in done.succeeded.items():
            s.op.step(node, "run", plan.argv, f"exit {res.status}", res.seconds)
        for node, why in done.failed.items():
            s.op.step(node, "run", plan.argv, f"failed in {why.phase}: {why.message}", 0.0)
    return results, failed


def _rolling(
    s: Session, plan: RunPlan, known: ClusterRoles
) -> tuple[dict[str, CommandResult], dict[str, NodeFailure]]:
    """Through the engine: each batch must come back healthy before the next; nothing to undo."""
    results: dict[str, CommandResult] = {}

    def change(node: str) -> NodeChange:
        boots: list[str] = []
        own = known.of(node)  # the roles as the release the node runs defines them
        roles = in_start_order(own[r] for r in s.cluster.node(node).roles if r in own)

        def run_it() -> int:
            boots.append(boot_id(s.transport(node)))
            results[node] = _command(s, plan, node)
            res = results[node]
            s.op.step(node, "run", plan.argv, f"exit {res.status}", res.seconds)
            return 1

        def verify() -> None:
            wait_back(s.conns, node, roles, boots[0], plan.wait_timeout)

        return NodeChange(node, run_it, verify=verify)

    size = max(len(b) for b in plan.batches)
    report = rollout(
        s,
        [change(n) for b in plan.batches for n in b],
        Batching(parallel=max(size, s.parallel), serial=size),
    )
    failed = report.failed_nodes
    for node, why in failed.items():
        s.op.step(node, "run", plan.argv, f"failed in {why.phase}: {why.message}", 0.0)
    return {n: r for n, r in results.items() if n not in failed}, failed


def _command(s: Session, plan: RunPlan, node: str) -> CommandResult:
    """Run the command; with --wait-healthy, a connection the command closed (a reboot) is
    no failure: the health wait that follows tells."""
    started = time.monotonic()
    try:
        result = s.transport(node).run(plan.argv, check=False)
    except NodeUnreachable as exc:
        if not plan.wait_healthy or exc.phase == "command":  # a timeout is no reboot
            raise
        result = CommandResult(
            node, plan.argv, -1, "", "connection closed by the node", time.monotonic() - started
        )
    if result.status not in (0, -1) or (result.status == -1 and not plan.wait_healthy):
        raise RemoteCommandFailed(node, plan.argv, result.status, result.stderr)
    return result
