"""`kato relocate NAME NEW_LOCATION`: the preflight on every chosen node, then through the
rollout engine, one node at a time (stop at the first failure): *stage* copies while the roles
run; *change* stops them, copies the final delta, verifies, switches and starts them; *verify*
waits for their health; *undo* puts the old location back."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kato import role_definitions
from kato.config import Cluster
from kato.datadirs import Locations, locations
from kato.engine.batches import Batching
from kato.engine.cycle import HealthAnswer
from kato.engine.report import FAILED, STAGE, UNDONE, RolloutReport
from kato.engine.rollout import NodeChange, rollout
from kato.engine.session import Session, session
from kato.progress import Progress, SilentProgress
from kato.relocate import downtime, quotas, steps
from kato.relocate.facts import NodeFacts, gather
from kato.relocate.preflight import QUOTA_DIRS, check
from kato.relocate.steps import NodeRun
from kato.relocate.targets import Target, check_location, check_name, holders, targets


@dataclass
class RelocateResult:
    name: str
    location: str
    targets: tuple[Target, ...]
    dry_run: bool
    facts: dict[str, NodeFacts] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    runs: list[NodeRun] = field(default_factory=list)
    report: RolloutReport | None = None
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return self.report.exit_code if self.report else 0

    @property
    def hint(self) -> str | None:
        """The way forward after a failure, from where it happened."""
        if self.report is None or not self.report.failed_nodes:
            return None
        failed = [r for r in self.report.nodes if r.state in (FAILED, UNDONE)]
        if any(r.state == FAILED and r.phase != STAGE for r in failed):
            return ("putting the old location back failed: see `kato relocate status` and "
                    "docs/relocate.md (Recovering by hand)")  # fmt: skip
        where = ("the roles kept running on their old location" if failed[0].phase == STAGE
                 else "the old location is back in use and the roles are healthy")  # fmt: skip
        return (f"{where}; the copy is kept, so the same command run again (once the cause is "
                "fixed) continues from it")  # fmt: skip


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
    """Preflight everywhere first; then node by node through the engine."""
    progress = progress or SilentProgress()
    check_name(name, *role_definitions.without_nodes(cluster))  # before any node is asked
    check_location(location)
    picked = [cluster.node(n).name for n in options.nodes] or [n.name for n in cluster.nodes]
    started = time.monotonic()
    with session(cluster, options.command, lock_wait=options.lock_wait,
                 dry_run=options.dry_run, progress=progress) as s:  # fmt: skip
        progress.step("reading each node's role definitions (those of the release it runs)")
        # over the session's connections, before the lock (begun only by the first change)
        defined = role_definitions.of_nodes(cluster, s.conns, picked)  # each its release's
        chosen = holders(cluster, defined, name, options.nodes)
        progress.step("reading where the data dirs live")
        where: dict[str, Locations] = {n: locations(s.transport(n)) for n in chosen}
        found = targets(cluster, defined, name, location, where, options.nodes)
        result = RelocateResult(name, location, found, options.dry_run)
        _preflight(s, result, where, options)
        if options.dry_run:
            return result
        for node in dict.fromkeys(t.node for t in found):
            run = NodeRun(node, tuple(t for t in found if t.node == node))
            if any(not t.done for t in run.targets) or _interrupted(result, run):
                result.runs.append(run)
            else:
                result.warnings.append(f"{node}: {name} is already at {location}")
        if not result.runs:
            return result
        quota = name in QUOTA_DIRS and not options.no_quota
        if quota:  # before any data moves, so a refusal (exit 7) moves nothing
            for run in result.runs:
                quotas.enable(s.transport(run.node), s.op, result.facts[run.node].paths[location],
                              progress)  # fmt: skip
        changes = [_change(s, run, result, options.app_limit if quota else None)
                   for run in result.runs]  # fmt: skip
        result.report = rollout(s, changes, Batching(parallel=s.parallel, serial=1))
        s.op.notes.extend(result.warnings)
    result.seconds = time.monotonic() - started
    return result


def _preflight(
    s: Session, result: RelocateResult, where: dict[str, Locations], options: Options
) -> None:
    s.progress.step("checking the new location on every node (preflight)")
    for node in dict.fromkeys(t.node for t in result.targets):
        mine = [t for t in result.targets if t.node == node]
        paths = [p for t in mine for p in (t.current, t.dest)]
        with_quota = result.name in QUOTA_DIRS and any(not t.done for t in mine)
        result.facts[node] = gather(s.transport(node), where[node], paths, result.location,
                                    with_quota)  # fmt: skip
    verdict = check(result.targets, result.facts, result.location, no_quota=options.no_quota)
    result.warnings.extend(verdict.warnings)
    verdict.refuse_if_any()


def _interrupted(result: RelocateResult, run: NodeRun) -> bool:
    """Moved, but the run that moved it was cut before its roles were healthy again."""
    moving = result.facts[run.node].locations.moving
    return any(t.name in moving.get(t.role.name, {}) for t in run.targets)


def _change(s: Session, run: NodeRun, result: RelocateResult, limit: int | None) -> NodeChange:
    where = result.facts[run.node].paths[result.location]
    roles = steps.roles_of(run.targets)
    health = HealthAnswer(s.conns, run.node, roles)
    clock: dict[str, float] = {}

    def stage() -> None:
        t = s.transport(run.node)
        steps.stage(t, s.op, run, result.location, s.progress)
        if limit is not None:  # the apps' dirs become limited subvolumes while the roles run
            quotas.limit_apps(t, s.op, where, run, limit)

    def change() -> int:
        t = s.transport(run.node)
        clock["stopped"] = time.monotonic()
        downtime.stop(t, s.op, run, s.progress)
        steps.final_delta(t, s.op, run, s.progress)
        if limit is not None:  # an app that appeared since
            quotas.limit_apps(t, s.op, where, run, limit)
        steps.verify(t, s.op, run, s.progress)
        downtime.switch_and_start(t, s.op, run, s.progress, health)
        return len(run.verified)

    def verify() -> None:
        health()  # the node's answer at the end of the change, else a wait from here
        if not run.undone:
            run.downtime = time.monotonic() - clock.get("stopped", time.monotonic())
            steps.finish(s.transport(run.node), run)

    def undo() -> None:
        s.progress.warn(f"{run.node}: putting the old location back")
        run.undone = True
        steps.undo(s.transport(run.node), s.op, run)

    return NodeChange(run.node, change, stage=stage, undo=undo, verify=verify, restarts=roles)
