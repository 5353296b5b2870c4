"""`kato data export --to REMOTE:PATH` and the schedule's `--offsite`: the verified local archive
shipped off-site (offsite.upload), and retention off-site that never deletes the newest copy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kato.config import Cluster
from kato.data import offsite
from kato.data.retention import Candidate, RetentionResult, plan_retention
from kato.errors import KatoError, UsageError
from kato.progress import Progress, SilentProgress


@dataclass
class Shipped:
    """An export and its off-site copy."""

    export: Any  # ExportResult
    upload: offsite.Upload


def location(text: str, option: str) -> offsite.Location:
    found = offsite.parse_location(text)
    if found is None:
        raise UsageError(
            f"{option} {text!r} is not REMOTE:PATH",
            hint="name a remote of the rclone config in the cluster file, e.g. backup:kato/prod",
        )
    return found


def export_to(
    cluster: Cluster, dest: str, to: str, *, progress: Progress | None = None, **export: Any
) -> Shipped:
    """Export into `dest` (a file or directory, not -), then upload the verified archive."""
    from kato.data.export import export as exporting

    where = location(to, "--to")
    if dest == "-":
        raise UsageError("--to ships a file: DEST - has none", hint="export to a directory")
    offsite.rclone_base(cluster)  # a missing config or rclone is refused before the export
    done = exporting(cluster, dest, progress=progress, **export)
    if done.path is None:  # a dry run
        return Shipped(done, offsite.Upload("", where.join("NAME"), 0, "dry run"))
    return Shipped(done, ship(cluster, Path(done.path), where, progress))


def ship(
    cluster: Cluster, archive: Path, to: offsite.Location, progress: Progress | None
) -> offsite.Upload:
    try:
        return offsite.upload(cluster, archive, to, progress)
    except offsite.OffsiteFailed as exc:
        raise offsite.OffsiteFailed(
            f"{exc.message}; the archive stays at {archive}",
            hint=f"fix the remote, then upload it again with `rclone copy {archive} {to}` "
            "or the next export",
        ) from None


def keep_newest(
    cluster: Cluster, at: offsite.Location, keep: int, progress: Progress | None = None
) -> RetentionResult:
    """Delete this cluster's older archives at `at` beyond the newest `keep`. Every archive
    under its final name off-site was checked when it was uploaded (offsite.upload), and the
    newest is never deleted (keep >= 1); other clusters' archives are never touched."""
    progress = progress or SilentProgress()
    found = [
        Candidate(name, created, True)
        for name, _, (owner, created) in offsite.listing(cluster, at)
        if owner == cluster.name
    ]
    plan = plan_retention(found, keep)
    deleted, errors = [], []
    for name in plan.delete:
        progress.step(f"deleting {at.join(name)} (retention)")
        try:
            offsite.rclone(cluster, "deletefile", at.join(name), timeout=600)
            deleted.append(name)
        except KatoError as exc:
            errors.append(f"{at.join(name)}: {exc.message}")
    return RetentionResult(plan, tuple(deleted), tuple(errors))
