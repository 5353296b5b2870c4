"""`kato upgrade in-place V` (deisctl's recommended path): preflight, stage, a verified export
of the data the migrations touch, stop every role, activate V everywhere, migrate, start in
role order behind the health gate; a failed gate rolls every node back by itself.

Every phase is recorded in the upgrade record (kato/upgrade/state.py) before it starts and
each phase is idempotent, so running the same command again after kill -9 (or a reboot of
the core node) continues where it stopped.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from kato import release as releases
from kato import role_definitions
from kato.config import Cluster
from kato.data.export import export
from kato.engine.session import Session
from kato.errors import ExitCode, Interrupted, KatoError, PreflightRefused
from kato.migrations import pending
from kato.transport.pool import Connections
from kato.upgrade import catalog, prepare, state, walk
from kato.upgrade.options import Options
from kato.upgrade.preflight import Preflight, judge
from kato.upgrade.rollback import roll_back
from kato.upgrade.stage import stage_all
from kato.upgrade.state import UpgradeState

RESUMABLE = ("one version", "healthy", "direction")  # expected half-way through an upgrade


@dataclass
class UpgradeOutcome:
    target: str
    kind: str
    dry_run: bool
    plan: Preflight | None
    source: str | None = None
    result: str = "planned"  # planned, nothing to do, done, rolled back
    backup: str | None = None
    downtime: float | None = None
    seconds: float = 0.0
    failure: str | None = None
    resumed: bool = False
    notes: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)  # a dry run's sequence, when not in plan

    @property
    def exit_code(self) -> int:
        return int(ExitCode.PARTIAL if self.result == "rolled back" else ExitCode.OK)


def unfinished(rec: UpgradeState | None, version: str, kind: str) -> bool:
    """True when `rec` is an interrupted upgrade to `version` this command resumes."""
    if rec is None or not rec.unfinished:
        return False
    if rec.target != version or rec.kind != kind:
        raise PreflightRefused(
            f"the {rec.kind} upgrade {rec.source} -> {rec.target} is unfinished ({rec.phase})",
            hint="finish it (`kato upgrade resume`) or undo it (`kato upgrade rollback`) first",
        )
    return True


def preflight(
    cluster: Cluster,
    conns: Connections,
    location: str,
    target: releases.Release,
    ok: prepare.Verified,
    kind: str,
    allow_downgrade: bool,
    resuming: bool,
) -> Preflight:
    result = judge(
        cluster, prepare.gather(cluster, conns, location, target, ok), kind, allow_downgrade
    )
    if resuming:
        kept = tuple(r for r in result.refusals if r.check not in RESUMABLE)
        result = replace(result, refusals=kept, nothing_to_do=False)
    prepare.refuse(result)
    return result


def new_record(plan: Preflight, kind: str, stateless: bool = False) -> UpgradeState:
    return UpgradeState(
        uuid.uuid4().hex[:12],
        kind,
        str(plan.running),
        plan.version,
        plan.digest,
        "staging",
        stateless=stateless,
    )


def stage_and_back_up(
    s: Session,
    rec: UpgradeState,
    ok: prepare.Verified,
    plan: Preflight,
    location: str,
    how: Options,
    out: UpgradeOutcome,
) -> UpgradeState:
    """Stage the target everywhere (nothing live changes), then the verified export of what
    its migrations touch (joining this operation: the lock is not let go in between)."""
    cluster, core = s.cluster, s.transport(s.cluster.core)
    state.write(core, rec := rec.moved("staging"))
    target = releases.load_release(location, rec.target)
    facts = prepare.gather(cluster, s.conns, location, target, ok)
    staged = stage_all(cluster, s.conns, s.op, target, ok, facts)
    if staged.failed:
        raise walk.WalkFailed("stage (nothing live was changed)", staged.failed)
    state.write(core, rec := rec.moved("staged"))
    roles = sorted({m.role for m in plan.migrations})
    if how.no_backup and roles:
        out.notes.append(f"--no-backup: {', '.join(roles)} NOT exported before migrating")
    elif roles and rec.backup is None:
        Path(how.backup_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        s.progress.step(f"exporting {', '.join(roles)} before the upgrade")
        done = export(cluster, how.backup_dir, only=roles, command=s.command, progress=s.progress)
        state.write(core, rec := rec.moved("exported", backup=done.path, backup_roles=tuple(roles)))
    out.backup = rec.backup
    return rec


def change(s: Session, rec: UpgradeState, location: str) -> UpgradeState:
    """Stop, activate, migrate, start: the downtime, measured from the first stop."""
    cluster, core = s.cluster, s.transport(s.cluster.core)
    old_release = releases.load_release(location, rec.source)
    new_release = releases.load_release(location, rec.target)
    old = role_definitions.of_release(old_release)
    new = role_definitions.of_release(new_release)
    migrations = pending(old_release.migrations, new_release.migrations)
    started = time.monotonic()
    state.write(core, rec := rec.moved("stopping"))
    walk.stop(s, walk.cluster_roles(cluster, old))
    state.write(core, rec := rec.moved("activating"))
    walk.activate(s, rec.target, new, old)
    state.write(core, rec := rec.moved("migrating", migrated=tuple(m.name for m in migrations)))
    walk.migrate(s, rec.target, migrations)
    state.write(core, rec := rec.moved("starting"))
    walk.start(s, walk.cluster_roles(cluster, new))
    rec = rec.moved("done", result="done", downtime=round(time.monotonic() - started, 3))
    state.write(core, rec)
    return rec


def in_place(
    cluster: Cluster, version: str, how: Options, *, allow_downgrade: bool = False
) -> UpgradeOutcome:
    """`kato upgrade in-place VERSION`; see the module docstring."""
    location = catalog.repository(cluster, how.repo)
    target = releases.load_release(location, version)
    begun = time.monotonic()
    with (
        prepare.verified(cluster, location, target) as ok,
        how.session(cluster) as s,
    ):
        conns, core = s.conns, s.transport(cluster.core)
        previous = state.read(core)
        resuming = unfinished(previous, version, "in-place")
        plan = preflight(
            cluster, conns, location, target, ok, "in-place", allow_downgrade, resuming
        )
        out = UpgradeOutcome(version, "in-place", how.dry_run, plan, plan.running, resumed=resuming)
        if plan.nothing_to_do:
            out.result = "nothing to do"
            return out
        if how.dry_run:
            return out
        rec = previous if previous is not None and resuming else new_record(plan, "in-place")
        out.source = rec.source
        s.begin()  # one lock from the first change to the end, any rollback included
        rec = stage_and_back_up(s, rec, ok, plan, location, how, out)
        try:
            rec = change(s, rec, location)
        except Interrupted:
            raise  # Ctrl-C: the record says where it stopped (resume or rollback)
        except KatoError as exc:
            out.failure = exc.message
            rec = state.failed(core, rec, exc.message)
            how.progress.warn(f"{exc.message}: rolling every node back to {rec.source}")
            rec = roll_back(s, rec, location)
        out.result, out.downtime = str(rec.result), rec.downtime
    out.seconds = time.monotonic() - begun
    return out
