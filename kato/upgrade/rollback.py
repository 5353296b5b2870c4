"""Rolling back: every node returns to the release the upgrade started from, in reverse order
(stop with the new release's definitions, activate the previous release, restore the
pre-upgrade export when a migration ran, start in role order behind the health gate).

Used by `kato upgrade rollback` and, automatically, by an upgrade whose health gate failed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kato import release as releases
from kato import role_definitions
from kato.config import Cluster
from kato.data.import_ import import_archive
from kato.engine.session import Session, session
from kato.errors import PreflightRefused, UsageError
from kato.progress import Progress
from kato.transport.pool import Connections
from kato.upgrade import catalog, state, walk
from kato.upgrade import nodes as node_releases
from kato.upgrade.state import UpgradeState


@dataclass
class RollbackOutcome:
    target: str  # the release the cluster goes back to
    leaving: str
    dry_run: bool
    restore: str | None  # the export restored (or to restore)
    restore_roles: tuple[str, ...] = ()
    steps: list[str] = field(default_factory=list)
    result: str = "planned"
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def describe(rec: UpgradeState) -> RollbackOutcome:
    """What a rollback of `rec` does, one line per step (and what it will lose)."""
    out = RollbackOutcome(
        rec.source,
        rec.target,
        True,
        rec.backup if rec.migrated else None,
        rec.backup_roles if rec.migrated else (),
    )
    out.steps.append(f"stop every role ({rec.target}'s definitions, reverse order)")
    out.steps.append(f"activate {rec.source} on every node (it is still installed)")
    if rec.migrated:
        out.steps.append(
            f"restore {', '.join(rec.backup_roles)} from the pre-upgrade export {rec.backup}: "
            f"changes made to that data since the export are lost ({', '.join(rec.migrated)} ran)"
        )
    out.steps.append(f"start every role in order on {rec.source}, each behind its health gate")
    return out


def check(rec: UpgradeState | None) -> UpgradeState:
    """The upgrade to roll back, or a refusal naming why there is none."""
    if rec is None:
        raise UsageError(
            "there is no upgrade to roll back on this cluster",
            hint="`kato upgrade status` shows the last upgrade",
        )
    if rec.result == "rolled back":
        raise UsageError(
            f"the upgrade {rec.source} -> {rec.target} was rolled back already",
            hint="`kato upgrade status` shows where each node is",
        )
    if rec.migrated and not rec.backup:
        raise PreflightRefused(
            f"the upgrade to {rec.target} ran {', '.join(rec.migrated)} without a pre-upgrade "
            f"export (--no-backup): {rec.source} cannot be given its data back",
            hint="restore an export taken before the upgrade with `kato data import`, or stay "
            f"on {rec.target}",
        )
    return rec


def require_installed(cluster: Cluster, conns: Connections, version: str) -> None:
    """Every node must still hold `version` for its roles before anything stops (exit 7)."""
    missing = []
    for node in cluster.nodes:
        have = node_releases.gather(conns.get(node.name)).versions.get(version)
        if have is None or not set(node.roles) <= set(have.roles):
            missing.append(node.name)
    if missing:
        raise PreflightRefused(
            f"{version} is no longer installed on {', '.join(missing)}: rolling back would stop "
            "the platform and find nothing to start (nothing was changed)",
            hint=f"stage it again first: `kato upgrade stage {version}`",
        )


def roll_back(s: Session, rec: UpgradeState, location: str) -> UpgradeState:
    """Return every node to rec.source under one lock (the restore's import joins it); the
    record says how far it got at every step."""
    cluster, core = s.cluster, s.transport(s.cluster.core)
    old = role_definitions.of_release(releases.load_release(location, rec.source))
    new = role_definitions.of_release(releases.load_release(location, rec.target))
    s.begin()
    state.write(core, rec := rec.moved("rolling back: stopping"))
    walk.stop(s, walk.cluster_roles(cluster, new), tolerate=True)
    state.write(core, rec := rec.moved("rolling back: activating"))
    walk.activate(s, rec.source, old, new)
    if rec.migrated and rec.backup is not None:
        archive = rec.backup
        s.progress.step(f"restoring {', '.join(rec.backup_roles)} from {archive}")
        state.write(core, rec := rec.moved("rolling back: restoring"))
        import_archive(
            cluster, archive, only=rec.backup_roles, command=s.command, progress=s.progress
        )
    state.write(core, rec := rec.moved("rolling back: starting"))
    walk.start(s, walk.cluster_roles(cluster, old))
    rec = rec.moved("rolled back", result="rolled back")
    state.write(core, rec)
    return rec


def rollback(
    cluster: Cluster,
    *,
    confirmed: bool = False,
    dry_run: bool = False,
    repo: str | None = None,
    lock_wait: float = 0.0,
    command: Sequence[str] = (),
    progress: Progress | None = None,
) -> RollbackOutcome:
    """`kato upgrade rollback`: refused (exit 7) without `confirmed` when data is restored."""
    location = catalog.repository(cluster, repo)
    started = time.monotonic()
    with session(cluster, command, lock_wait=lock_wait, progress=progress) as s:
        rec = check(state.read(s.transport(cluster.core)))
        require_installed(cluster, s.conns, rec.source)
        out = describe(rec)
        if dry_run:
            return out
        if rec.migrated and not confirmed:
            raise PreflightRefused(
                "the rollback restores the pre-upgrade export: " + out.steps[2],
                hint="run it again with --yes to go ahead",
            )
        roll_back(s, rec, location)
    out.dry_run, out.result, out.seconds = False, "rolled back", time.monotonic() - started
    return out
