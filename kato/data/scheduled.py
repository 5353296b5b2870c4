"""`kato data schedule run`: one scheduled export, its archive verified, retention, the metric."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kato.config import Cluster
from kato.data import backups, metrics, retention
from kato.data.retention import RetentionResult
from kato.data.schedule import RunOptions, cluster_roles, validate_options
from kato.errors import KatoError, UsageError
from kato.progress import Progress, SilentProgress

if TYPE_CHECKING:
    from kato.data.export import ExportResult


@dataclass(frozen=True)
class RunReport:
    archive: str
    bytes: int
    seconds: float
    retention: retention.RetentionResult | None
    metrics: str
    warnings: tuple[str, ...] = ()
    offsite: str | None = None  # where the archive was uploaded, checked
    offsite_retention: RetentionResult | None = None

    @property
    def problems(self) -> tuple[str, ...]:
        """What an operator should look at although the export itself succeeded."""
        if self.retention is None:
            return self.warnings
        invalid = tuple(
            f"{c.name} fails verification ({c.problem}); it is kept, never deleted"
            for c in self.retention.plan.invalid
        )
        away = self.offsite_retention.errors if self.offsite_retention is not None else ()
        return (
            self.warnings
            + invalid
            + tuple(f"could not delete {e}" for e in (*self.retention.errors, *away))
        )


def run(
    cluster: Cluster,
    options: RunOptions,
    *,
    command: Sequence[str] = (),
    progress: Progress | None = None,
    verifier: backups.Verifier = backups.verify_problem,
    clock: Callable[[], float] = time.time,
) -> RunReport:
    """Export into options.dest (waiting options.lock_wait for the cluster lock, so runs never
    overlap; export verifies the archive), apply --keep, and record the outcome in the metric
    file whatever happens."""
    from kato.data import export as exporting

    validate_options(options, cluster_roles(cluster))
    progress = progress or SilentProgress()
    target = Path(options.metrics or metrics.DEFAULT_PATH)
    try:
        directory = _destination(options.dest)
        done = exporting.export(  # verifies the archive before it gets its final name
            cluster,
            options.dest,
            only=options.only,
            exclude=options.exclude,
            compress=options.compress,
            lock_wait=options.lock_wait,
            command=command,
            progress=progress,
        )
        assert done.path is not None  # not a dry run, not standard output
        archive = Path(done.path)
    except BaseException:
        metrics.write(target, metrics.Outcome(options.dest, clock(), success=False))
        raise
    kept = None
    if options.keep is not None:
        kept = keep_newest(
            cluster.name, directory, options.keep, {archive.name: None}, verifier, progress
        )
    invalid = len(kept.plan.invalid) if kept is not None else None
    shipped, kept_away = _offsite(cluster, options, archive, target, progress, clock)
    metrics.write(
        target,
        metrics.Outcome(options.dest, clock(), True, done.bytes, invalid_archives=invalid),
    )
    return RunReport(
        str(archive), done.bytes, done.seconds, kept, str(target), tuple(done.warnings),
        shipped, kept_away,
    )  # fmt: skip


def _offsite(
    cluster: Cluster,
    options: RunOptions,
    archive: Path,
    target: Path,
    progress: Progress,
    clock: Callable[[], float],
) -> tuple[str | None, retention.RetentionResult | None]:
    """Upload the verified archive (a failure fails the run: the metric says so, the local
    archive stays), then apply --keep off-site too."""
    if options.offsite is None:
        return None, None
    from kato.data import shipping

    at = shipping.location(options.offsite, "--offsite")
    try:
        uploaded = shipping.ship(cluster, archive, at, progress)
    except BaseException:
        metrics.write(target, metrics.Outcome(options.dest, clock(), success=False))
        raise
    kept = None
    if options.keep is not None:
        kept = shipping.keep_newest(cluster, at, options.keep, progress,
                                    uploaded=archive.name, spool=archive.parent)  # fmt: skip
    return uploaded.remote, kept


def _destination(dest: str) -> Path:
    """The archive directory, made if missing (export alone would take it for a file name)."""
    directory = Path(dest)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--dest {dest} is not a directory", hint="name a directory")
    try:
        directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise KatoError(f"cannot make {dest}: {exc.strerror}") from None
    return directory


def keep_newest(
    cluster: str,
    directory: Path,
    keep: int,
    known: dict[str, str | None],
    verifier: backups.Verifier,
    progress: Progress,
) -> retention.RetentionResult:
    """Verify this cluster's archives in `directory` (those in `known` are already checked)
    and delete what the retention rule allows."""
    candidates = []
    for found in backups.find_archives(directory):
        if found.cluster != cluster:
            continue  # another cluster's archives are never ours to delete
        name = found.path.name
        if name in known:
            problem = known[name]
        else:
            progress.step(f"verifying {name}")
            problem = verifier(found.path)
        candidates.append(
            retention.Candidate(found.path.name, found.created, problem is None, problem)
        )
    plan = retention.plan_retention(candidates, keep)
    return retention.apply_retention(directory, plan)


def outcome_error(report: RunReport) -> KatoError | None:
    """Exit 1 when archives that should go could not be deleted (the disk would fill up)."""
    errors = [
        *(report.retention.errors if report.retention is not None else ()),
        *(report.offsite_retention.errors if report.offsite_retention is not None else ()),
    ]
    if errors:
        return KatoError(
            "retention could not delete: " + "; ".join(errors),
            hint=f"check the permissions and the filesystem of {Path(report.archive).parent}",
        )
    return None


@dataclass(frozen=True)
class RunPlan:
    """What one scheduled run would do (`--dry-run`): the export's reads, then retention."""

    export: ExportResult  # of a dry run: what would be read
    keep: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()


NEW_ARCHIVE = "(the new archive)"


def plan(
    cluster: Cluster,
    options: RunOptions,
    *,
    progress: Progress | None = None,
    verifier: backups.Verifier = backups.verify_problem,
    clock: Callable[[], float] = time.time,
) -> RunPlan:
    """The run without any change: no archive, no deletion, no metric (archives already in
    --dest are verified, read-only, to plan the retention)."""
    from kato.data import export as exporting

    validate_options(options, cluster_roles(cluster))
    progress = progress or SilentProgress()
    planned = exporting.export(
        cluster, options.dest, only=options.only, exclude=options.exclude,
        compress=options.compress, dry_run=True, progress=progress,
    )  # fmt: skip
    directory = Path(options.dest)
    if options.keep is None or not directory.is_dir():
        return RunPlan(planned)
    now = datetime.fromtimestamp(clock(), tz=UTC)
    candidates = [retention.Candidate(NEW_ARCHIVE, now, True, None)]
    for found in backups.find_archives(directory):
        if found.cluster == cluster.name:
            progress.step(f"verifying {found.path.name}")
            problem = verifier(found.path)
            candidates.append(
                retention.Candidate(found.path.name, found.created, problem is None, problem)
            )
    kept = retention.plan_retention(candidates, options.keep)
    return RunPlan(planned, kept.keep, kept.delete)
