"""`kato data export --to REMOTE:PATH` and the schedule's `--offsite`: the verified local archive
shipped off-site (offsite.upload), and retention off-site that never deletes the newest copy."""

from __future__ import annotations

from collections.abc import Callable
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
    offsite.require_remote(cluster, where)  # no config, rclone or remote: before the export
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
    cluster: Cluster,
    at: offsite.Location,
    keep: int,
    progress: Progress | None = None,
    *,
    uploaded: str | None = None,
    spool: Path | None = None,
    verifier: Callable[[str], str | None] | None = None,
) -> RetentionResult:
    """Delete this cluster's older archives at `at` beyond the newest `keep` that verify.
    Newest first, each copy is read back and verified (`uploaded`, checked by its upload a
    moment ago, is not read again) until `keep` verify: a corrupted copy is never counted, never
    deleted here, and reported. Copies older than those `keep` are deleted unread (they are not
    needed, whatever their state). So the newest verified copy is never deleted, nothing is
    deleted when none verifies, and other clusters' archives are never touched."""
    progress = progress or SilentProgress()
    check = verifier or (lambda name: _read_back(cluster, at, name, spool, progress))
    found, verified = [], 0
    for name, _, (owner, created) in offsite.listing(cluster, at):
        if owner != cluster.name:
            continue
        problem = None
        if verified < keep and name != uploaded:
            problem = check(name)
        found.append(Candidate(name, created, problem is None, problem))
        verified += problem is None
    plan = plan_retention(found, keep)
    deleted, errors = [], []
    for name in plan.delete:
        progress.step(f"deleting {at.join(name)} (retention)")
        try:
            offsite.rclone(cluster, "deletefile", at.join(name), timeout=600)
            deleted.append(name)
        except KatoError as exc:
            errors.append(f"{at.join(name)}: {exc.message}")
    for bad in plan.invalid:
        progress.warn(f"{at.join(bad.name)} does not verify ({bad.problem}): kept, not counted")
    return RetentionResult(plan, tuple(deleted), tuple(errors))


def _read_back(
    cluster: Cluster, at: offsite.Location, name: str, spool: Path | None, progress: Progress
) -> str | None:
    """None when the off-site copy, downloaded whole, verifies; else what is wrong with it."""
    from kato.data.backups import verify_problem

    progress.step(f"reading back {at.join(name)} (retention counts only verified copies)")
    try:
        with offsite.fetched(cluster, at.join(name), spool) as path:
            return verify_problem(path)
    except KatoError as exc:
        return f"archive: reading it back failed: {exc.message}"
