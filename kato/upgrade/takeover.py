"""`kato upgrade takeover V`, the second half of a graceful upgrade: each node carrying a role
that serves during the upgrade, one at a time on the rollout engine, is drained from the load
balancer, stopped, activated, started, health-gated and put back (a failure undoes it and every
node taken over before it, newest first); then V on the other nodes, the migrations, and the
roles prep stopped started in role order. A failure there rolls every node back by itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from kato import release as releases
from kato import role_definitions
from kato.config import Cluster
from kato.connect import connections
from kato.data.import_ import import_archive
from kato.engine.batches import Batching
from kato.engine.health import wait_healthy
from kato.engine.report import FAILED, RolloutReport
from kato.engine.rollout import NodeChange, rollout
from kato.engine.session import Session, session
from kato.errors import KatoError, PreflightRefused, UsageError
from kato.migrations import pending
from kato.operation import operation
from kato.progress import Progress, SilentProgress
from kato.roles import Role
from kato.transport.pool import Connections
from kato.upgrade import catalog, state, walk
from kato.upgrade import nodes as node_releases
from kato.upgrade.graceful import PREP, balancer, hook, stopped_by_prep
from kato.upgrade.inplace import UpgradeOutcome
from kato.upgrade.rollback import roll_back
from kato.upgrade.state import UpgradeState
from kato.versions import is_orderable, parse


def takeover(
    cluster: Cluster,
    version: str,
    *,
    repo: str | None = None,
    lock_wait: float = 0.0,
    command: Sequence[str] = (),
    progress: Progress | None = None,
) -> UpgradeOutcome:
    progress = progress or SilentProgress()
    balancer(cluster)
    location = catalog.repository(cluster, repo)
    begun = time.monotonic()
    with session(cluster, command, lock_wait=lock_wait, progress=progress) as s:
        core = s.transport(cluster.core)
        refuse_major_jump(s, version, location)
        rec = prepared(state.read(core), version)
        out = UpgradeOutcome(version, "takeover", False, None, rec.source)
        out.backup = rec.backup
        walker = Takeover(s, rec, location)
        try:
            report = walker.routers()
            if report.failed_nodes:
                out.failure = report.summary("the takeover of the routers")
                stuck = report.of(FAILED)  # its undo failed too: not back on the old release
                if stuck:
                    walker.save(f"failed: {out.failure[:200]}")
                    raise RoutersStuck(
                        f"{out.failure}; {', '.join(stuck)} could not be put back",
                        hint=f"bring {', '.join(stuck)} back (`kato status`), then "
                        "`kato upgrade rollback` (or `kato upgrade resume` to go on)",
                    )
                rec = walker.back_to_prep(out.failure)
            else:
                rec = walker.rest()
        except RoutersStuck:
            raise  # the record says where each node is; rolling back needs those nodes
        except KatoError as exc:
            out.failure = exc.message
            rec = state.read(core) or walker.rec
            state.write(core, rec := rec.moved(f"failed: {exc.message[:200]}"))
    if rec.unfinished and out.failure:
        progress.warn(f"{out.failure}: moving every node back to {rec.source}, routers one by one")
        try:
            rec = roll_back_gracefully(
                cluster, rec, location, lock_wait=lock_wait, command=command, progress=progress
            )
        except KatoError as exc:
            progress.warn(f"{exc.message}: rolling back in place instead")
            with connections(cluster) as conns:
                rec = state.read(conns.get(cluster.core)) or rec
                rec = roll_back(
                    cluster,
                    conns,
                    rec,
                    location,
                    lock_wait=lock_wait,
                    command=command,
                    progress=progress,
                )
                _undrain_all(cluster, conns, lock_wait, command)
    out.result, out.downtime = str(rec.result), rec.downtime
    out.seconds = time.monotonic() - begun
    return out


class RoutersStuck(KatoError):
    """A serving node failed and could not be put back either: nothing more is tried."""


def refuse_major_jump(s: Session, version: str, location: str) -> None:
    """A graceful upgrade stays within one major version, whatever was prepared (exit 7)."""
    found = {n.name: node_releases.gather(s.transport(n.name)) for n in s.cluster.nodes}
    running = catalog.running_version(found)
    releases.load_release(location, version)  # an unknown version: exit 2, naming the known
    comparable = running is not None and is_orderable(running) and is_orderable(version)
    if comparable and parse(str(running)).major != parse(version).major:
        raise PreflightRefused(
            f"{running} -> {version} crosses a major version: a graceful upgrade stays within one",
            hint=f"upgrade in place: `kato upgrade in-place {version}`",
        )


def prepared(rec: UpgradeState | None, version: str) -> UpgradeState:
    """The record of the prep of `version`, or a refusal naming the next step."""
    if rec is None or rec.kind != "graceful" or not rec.unfinished or rec.target != version:
        raise UsageError(
            f"no graceful upgrade to {version} is prepared",
            hint=f"run `kato upgrade prep {version}` first (`kato upgrade status` says more)",
        )
    if rec.phase in PREP and rec.phase != "prepped":
        raise PreflightRefused(
            f"the prep of {version} did not finish ({rec.phase})",
            hint="`kato upgrade resume` finishes it, `kato upgrade rollback` undoes it",
        )
    return rec


class Takeover:
    """The takeover's two walks: the serving nodes one at a time on the rollout engine (each
    undone, newest first, when one fails), then the rest of the platform in role order."""

    def __init__(self, s: Session, rec: UpgradeState, location: str) -> None:
        self.s, self.rec, self.cluster = s, rec, s.cluster
        self.old_release = releases.load_release(location, rec.source)
        self.new_release = releases.load_release(location, rec.target)
        old = role_definitions.of_release(self.old_release)
        new = role_definitions.of_release(self.new_release)
        keep = {r.name for r in old.values() if rec.stateless and r.data_service}
        self.old, self.new = old, new
        self.upgraded = {n: r for n, r in new.items() if n not in keep}
        self.leaving = {n: r for n, r in old.items() if n not in keep}
        self.serving = [r.name for r in old.values() if r.serves_during_upgrade]
        self.nodes = sorted(
            {n.name for n in self.cluster.nodes for r in self.serving if r in n.roles}
        )

    def save(self, phase: str, **changes: object) -> None:
        self.rec = self.rec.moved(phase, **changes)
        state.write(self.s.transport(self.cluster.core), self.rec)

    def change_for(self, node: str, back: bool = False) -> NodeChange:
        """One serving node moved to the target (undone by moving it back), or, `back`, moved
        back to the source release."""
        s, mine = self.s, [r for r in self.serving if r in self.cluster.node(node).roles]
        running = {"defs": self.new}

        def move(version: str, new: dict[str, Role], old: dict[str, Role]) -> int:
            hook(self.cluster, s.conns, s.op, "drain", node)
            walk.stop(self.cluster, s.conns, s.op, [old[r] for r in mine], s.progress, nodes=[node])
            walk.activate(self.cluster, s.conns, s.op, version, new, old, s.progress, nodes=[node])
            running["defs"] = new
            walk.start(
                self.cluster,
                s.conns,
                s.op,
                [new[r] for r in mine],
                s.progress,
                nodes=[node],
                gate=False,
            )
            return 1

        def verify() -> None:
            wait_healthy(s.conns, node, [running["defs"][r] for r in mine])
            hook(self.cluster, s.conns, s.op, "undrain", node)
            done = self.rec.taken_over
            if running["defs"] is self.upgraded and node not in done:
                self.save("taking over", taken_over=(*done, node))

        def undo() -> None:
            move(self.rec.source, self.leaving, self.upgraded)
            self.save("taking over", taken_over=tuple(n for n in self.rec.taken_over if n != node))

        if back:
            return NodeChange(
                node, lambda: move(self.rec.source, self.leaving, self.upgraded), verify=verify
            )
        return NodeChange(
            node,
            lambda: move(self.rec.target, self.upgraded, self.leaving),
            undo=undo,
            verify=verify,
        )

    def routers(self) -> RolloutReport:
        """Each serving node in turn: drain, stop, activate, start, health, undrain."""
        self.s.begin()
        self.save("taking over")
        todo = [self.change_for(n) for n in self.nodes if n not in self.rec.taken_over]
        return rollout(self.s, todo, Batching(self.s.parallel, serial=1), undo_all=True)

    def back_to_prep(self, why: str) -> UpgradeState:
        """The routers were undone: start what prep stopped, on the old release again."""
        s = self.s
        stopped = stopped_by_prep(self.old, self.rec.stateless)
        walk.start(self.cluster, s.conns, s.op, stopped, s.progress)
        self.save("rolled back", result="rolled back", detail=why[:200])
        return self.rec

    def rest(self) -> UpgradeState:
        """V on the other nodes, the migrations, the stopped roles started in role order."""
        s, cluster = self.s, self.cluster
        started = time.monotonic()
        others = [n.name for n in cluster.nodes if n.name not in self.nodes]
        self.save("activating")
        if others:
            walk.activate(
                cluster,
                s.conns,
                s.op,
                self.rec.target,
                self.upgraded,
                self.leaving,
                s.progress,
                nodes=others,
            )
        migrations = pending(self.old_release.migrations, self.new_release.migrations)
        self.save("migrating", migrated=tuple(m.name for m in migrations))
        walk.migrate(cluster, s.conns, s.op, self.rec.target, migrations, s.progress)
        self.save("starting")
        stopped = stopped_by_prep(self.old, self.rec.stateless)
        walk.start(
            cluster,
            s.conns,
            s.op,
            [self.upgraded[r.name] for r in stopped if r.name in self.upgraded],
            s.progress,
        )
        self.save("done", result="done", downtime=round(time.monotonic() - started, 3))
        return self.rec


def roll_back_gracefully(
    cluster: Cluster,
    rec: UpgradeState,
    location: str,
    *,
    lock_wait: float,
    command: Sequence[str],
    progress: Progress,
) -> UpgradeState:
    """After the routers moved: the other roles stopped and put back on the source release,
    the routers moved back one at a time (drained, replaced, health-gated, put back, so the
    apps keep serving), the pre-upgrade export restored if a migration ran, and the roles prep
    stopped started again in role order."""
    with session(cluster, command, lock_wait=lock_wait, progress=progress) as s:
        walker = Takeover(s, rec, location)
        s.begin()
        walker.save("rolling back: stopping")
        prepped = stopped_by_prep(walker.old, rec.stateless)
        running = [walker.upgraded.get(r.name, r) for r in prepped]
        walk.stop(cluster, s.conns, s.op, running, progress, tolerate=True)
        others = [n.name for n in cluster.nodes if n.name not in walker.nodes]
        if others:
            walk.activate(
                cluster,
                s.conns,
                s.op,
                rec.source,
                walker.leaving,
                walker.upgraded,
                progress,
                nodes=others,
            )
        walker.save("rolling back: routers")
        back = [walker.change_for(n, back=True) for n in walker.nodes]
        report = rollout(s, back, Batching(s.parallel, serial=1))
        if report.failed_nodes:
            raise KatoError(report.summary("moving the routers back"), hint=report.hint())
        walker.save("rolling back: restoring", taken_over=())
        rec = walker.rec
    if rec.migrated and rec.backup is not None:
        progress.step(f"restoring {', '.join(rec.backup_roles)} from {rec.backup}")
        import_archive(
            cluster,
            rec.backup,
            only=rec.backup_roles,
            lock_wait=lock_wait,
            command=command,
            progress=progress,
        )
    with session(cluster, command, lock_wait=lock_wait, progress=progress) as s:
        s.begin()
        walk.start(cluster, s.conns, s.op, prepped, progress)
        rec = rec.moved("rolled back", result="rolled back")
        state.write(s.transport(cluster.core), rec)
    return rec


def _undrain_all(
    cluster: Cluster, conns: Connections, lock_wait: float, command: Sequence[str]
) -> None:
    """After a rollback every router is back behind the load balancer (best effort each)."""
    with operation(conns, cluster.core, list(command), lock_wait=lock_wait) as op:
        for node in cluster.with_role("router"):
            try:
                hook(cluster, conns, op, "undrain", node.name)
            except KatoError as exc:
                op.notes.append(f"undrain {node.name}: {exc.message}")
