"""Rolling a graceful upgrade back after its routers moved: the routers moved back one at a
time behind the load balancer (the apps keep serving), and, if that fails too, every node
rolled back in place with every router put back behind the load balancer."""

from __future__ import annotations

from collections.abc import Sequence

from kato.config import Cluster
from kato.connect import connections
from kato.data.import_ import import_archive
from kato.engine.batches import Batching
from kato.engine.rollout import rollout
from kato.engine.session import session
from kato.errors import KatoError
from kato.operation import operation
from kato.progress import Progress
from kato.transport.pool import Connections
from kato.upgrade import state, walk
from kato.upgrade.graceful import hook, stopped_by_prep
from kato.upgrade.rollback import roll_back
from kato.upgrade.state import UpgradeState
from kato.upgrade.takeover_walk import Takeover


def recover(
    cluster: Cluster,
    rec: UpgradeState,
    location: str,
    *,
    lock_wait: float,
    command: Sequence[str],
    progress: Progress,
) -> UpgradeState:
    """Back to rec.source gracefully; failing that, in place (every router undrained after)."""
    try:
        return roll_back_gracefully(
            cluster, rec, location, lock_wait=lock_wait, command=command, progress=progress
        )
    except KatoError as exc:
        progress.warn(f"{exc.message}: rolling back in place instead")
    with connections(cluster) as conns:  # fresh ones: the failure may have cut some
        rec = state.read(conns.get(cluster.core)) or rec
        rec = roll_back(
            cluster, conns, rec, location, lock_wait=lock_wait, command=command, progress=progress
        )
        _undrain_all(cluster, conns, lock_wait, command)
    return rec


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
    stopped started again in role order, all under one lock."""
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
            archive = rec.backup
            progress.step(f"restoring {', '.join(rec.backup_roles)} from {archive}")
            import_archive(
                cluster,
                archive,
                only=rec.backup_roles,
                lock_wait=lock_wait,
                command=command,
                progress=progress,
            )
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
