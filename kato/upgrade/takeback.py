"""Rolling a graceful upgrade back after its routers moved: the routers moved back one at a
time behind the load balancer (the apps keep serving), and, if that fails too, every node
rolled back in place with every router put back behind the load balancer."""

from __future__ import annotations

from kato.data.import_ import import_archive
from kato.engine.batches import Batching
from kato.engine.rollout import rollout
from kato.engine.session import Session, session
from kato.errors import KatoError
from kato.upgrade import state, walk
from kato.upgrade.graceful import hook, stopped_by_prep
from kato.upgrade.rollback import roll_back
from kato.upgrade.state import UpgradeState
from kato.upgrade.takeover_walk import Takeover


def recover(s: Session, rec: UpgradeState, location: str) -> UpgradeState:
    """Back to rec.source gracefully; failing that, in place (every router undrained after).
    Both run inside the takeover's operation: the lock is held throughout."""
    try:  # fresh connections, joining the takeover's operation: the failure may have cut some
        with session(s.cluster, s.command, progress=s.progress) as fresh:
            return roll_back_gracefully(fresh, rec, location)
    except KatoError as exc:
        s.progress.warn(f"{exc.message}: rolling back in place instead")
    with session(s.cluster, s.command, progress=s.progress) as fresh:
        rec = state.read(fresh.transport(s.cluster.core)) or rec
        rec = roll_back(fresh, rec, location)
        _undrain_all(fresh)
    return rec


def roll_back_gracefully(s: Session, rec: UpgradeState, location: str) -> UpgradeState:
    """After the routers moved: the other roles stopped and put back on the source release,
    the routers moved back one at a time (drained, replaced, health-gated, put back, so the
    apps keep serving), the pre-upgrade export restored if a migration ran, and the roles prep
    stopped started again in role order."""
    cluster, walker = s.cluster, Takeover(s, rec, location)
    s.begin()
    walker.save("rolling back: stopping")
    prepped = stopped_by_prep(walker.old, rec.stateless)
    walk.stop(s, [walker.upgraded.get(r.name, r) for r in prepped], tolerate=True)
    others = [n.name for n in cluster.nodes if n.name not in walker.nodes]
    if others:
        walk.activate(s, rec.source, walker.leaving, walker.upgraded, nodes=others)
    walker.save("rolling back: routers")
    back = [walker.change_for(n, back=True) for n in walker.nodes]
    report = rollout(s, back, Batching(s.parallel, serial=1))
    if report.failed_nodes:
        why = "; ".join(f.message for f in report.failed_nodes.values())
        raise KatoError(f"{report.summary('moving the routers back')} ({why})", hint=report.hint())
    walker.save("rolling back: restoring", taken_over=())
    rec = walker.rec
    if rec.migrated and rec.backup is not None:
        archive = rec.backup
        s.progress.step(f"restoring {', '.join(rec.backup_roles)} from {archive}")
        import_archive(
            cluster, archive, only=rec.backup_roles, command=s.command, progress=s.progress
        )
    walk.start(s, prepped)
    rec = rec.moved("rolled back", result="rolled back")
    state.write(s.transport(cluster.core), rec)
    return rec


def _undrain_all(s: Session) -> None:
    """After a rollback every router is back behind the load balancer (best effort each)."""
    for node in s.cluster.with_role("router"):
        try:
            hook(s.cluster, s.conns, s.op, "undrain", node.name)
        except KatoError as exc:
            s.op.notes.append(f"undrain {node.name}: {exc.message}")
