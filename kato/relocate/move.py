"""`kato relocate NAME NEW_LOCATION`: the preflight on every chosen node, then node by node
(stop at the first failure): copy while the roles run, stop them, final delta, verify, switch,
start, health; a failure before they are healthy puts the old location back."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kato.config import Cluster
from kato.connect import connections
from kato.datadirs import Locations, locations
from kato.errors import KatoError, NodeUnreachable
from kato.operation import Operation, operation
from kato.progress import Progress, SilentProgress
from kato.relocate import quotas, steps
from kato.relocate.facts import NodeFacts, gather
from kato.relocate.preflight import QUOTA_DIRS, check
from kato.relocate.steps import NodeRun, RelocationFailed
from kato.relocate.targets import Target, check_location, check_name, targets
from kato.roles import load_roles
from kato.status import roles_directory
from kato.transport.pool import Connections


@dataclass
class RelocateResult:
    name: str
    location: str
    targets: tuple[Target, ...]
    dry_run: bool
    facts: dict[str, NodeFacts] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    runs: list[NodeRun] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def pending(self) -> tuple[Target, ...]:
        return tuple(t for t in self.targets if not t.done)


@dataclass(frozen=True)
class Options:
    nodes: Sequence[str] = ()
    dry_run: bool = False
    no_quota: bool = False
    app_limit: int = 2**30
    lock_wait: float = 0.0
    command: Sequence[str] = ()


def relocate(
    cluster: Cluster,
    name: str,
    location: str,
    options: Options,
    progress: Progress | None = None,
) -> RelocateResult:
    """Preflight everywhere first; then move node by node inside the lock and the journal."""
    progress = progress or SilentProgress()
    roles = load_roles(roles_directory())
    check_name(name, roles)
    check_location(location)
    started = time.monotonic()
    with connections(cluster) as conns:
        chosen = options.nodes or [n.name for n in cluster.nodes]
        progress.step("reading where the data dirs live")
        where: dict[str, Locations] = {n: locations(conns.get(n)) for n in chosen}
        found = targets(cluster, roles, name, location, where, options.nodes)
        result = RelocateResult(name, location, found, options.dry_run)
        _preflight(conns, result, where, options, progress)
        if options.dry_run:
            return result
        with operation(conns, cluster.core_node.name, options.command,
                       lock_wait=options.lock_wait) as op:  # fmt: skip
            for node in dict.fromkeys(t.node for t in found):
                mine = tuple(t for t in found if t.node == node)
                run = NodeRun(node, mine)
                result.runs.append(run)
                relocate_node(conns, op, run, result, options, progress)
            op.notes.extend(result.warnings)
    result.seconds = time.monotonic() - started
    return result


def _preflight(
    conns: Connections,
    result: RelocateResult,
    where: dict[str, Locations],
    options: Options,
    progress: Progress,
) -> None:
    progress.step("checking the new location on every node (preflight)")
    for node in dict.fromkeys(t.node for t in result.targets):
        mine = [t for t in result.targets if t.node == node]
        paths = [p for t in mine for p in (t.current, t.dest)]
        with_quota = result.name in QUOTA_DIRS and any(not t.done for t in mine)
        result.facts[node] = gather(conns.get(node), where[node], paths, result.location,
                                    with_quota)  # fmt: skip
    verdict = check(result.targets, result.facts, result.location, no_quota=options.no_quota)
    result.warnings.extend(verdict.warnings)
    verdict.refuse_if_any()


def relocate_node(
    conns: Connections,
    op: Operation,
    run: NodeRun,
    result: RelocateResult,
    options: Options,
    progress: Progress,
) -> None:
    t = conns.get(run.node)
    facts = result.facts[run.node]
    pending = [x for x in run.targets if not x.done]
    interrupted = [x for x in run.targets if x.done and _marked(facts, x)]
    if not pending and not interrupted:
        run.notes.append(f"{run.node}: {result.name} is already at {result.location}")
        return
    quota = result.name in QUOTA_DIRS and not options.no_quota
    where = facts.paths[result.location]
    if pending:
        if quota:
            quotas.enable(t, op, where, progress)
        try:
            steps.stage(t, op, run, result.location, progress)
        except NodeUnreachable as exc:
            raise _lost(run, exc) from exc
        except RelocationFailed as exc:
            raise RelocationFailed(
                exc.message,
                hint="the roles kept running on their old location; the partial copy is kept, "
                "so the same command run again (once the cause is fixed) continues from it",
            ) from exc
        if quota:  # the apps' dirs become limited subvolumes while the roles still run
            quotas.limit_apps(t, op, where, run, options.app_limit)
    stopped = time.monotonic()
    try:
        steps.stop(t, op, run, progress)
        steps.final_delta(t, op, run, progress)
        if quota:  # an app that appeared since
            quotas.limit_apps(t, op, where, run, options.app_limit)
        steps.verify_and_switch(t, op, run, progress)
        progress.step(f"{run.node}: starting {', '.join(r.name for r in steps.roles_of(pending))}")
        steps.start(t, op, run, conns)
    except (KatoError, KeyboardInterrupt) as exc:
        _undo(conns, op, run, exc, progress)
        raise
    run.downtime = time.monotonic() - stopped
    steps.finish(t, run)


def _marked(facts: NodeFacts, target: Target) -> bool:
    return target.name in facts.locations.moving.get(target.role.name, {})


def _lost(run: NodeRun, exc: NodeUnreachable) -> NodeUnreachable:
    return NodeUnreachable(
        exc.node,
        exc.phase,
        f"{exc.detail} (lost mid-relocation)",
        hint=f"when {run.node} is back, see `kato relocate status` and run the same kato "
        "relocate again: it continues from where it stopped (the old location serves until "
        "the switch)",
    )


def _undo(
    conns: Connections, op: Operation, run: NodeRun, exc: BaseException, progress: Progress
) -> None:
    """Put the old location back and start the roles on it; say what was and was not done."""
    if isinstance(exc, NodeUnreachable) and exc.node == run.node:
        raise _lost(run, exc) from exc
    progress.warn(f"{run.node}: {exc}; putting the old location back")
    try:
        steps.undo(conns.get(run.node), op, run, conns)
    except KatoError as again:
        raise RelocationFailed(
            f"{run.node}: relocation failed ({exc}) and putting the old location back "
            f"failed too: {again.message}",
            hint="see `kato relocate status` and docs/relocate.md (Recovering by hand)",
        ) from exc
    if isinstance(exc, KatoError):
        raise RelocationFailed(
            f"{exc.message}",
            hint="the old location is back in use and the roles are healthy; the copy was "
            "kept, so running the same command again continues from it",
        ) from exc
