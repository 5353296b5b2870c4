"""`kato data schedule add|list|remove|run` and `kato data backups DIR`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

from kato import output
from kato.cli.common import (
    DRY_RUN,
    EXCLUDE_ROLES,
    JSON,
    LOCK_WAIT,
    OLD_ONLY,
    PARALLEL,
    ROLES,
    Chosen,
    invocation,
    load_chosen,
    load_cluster,
    running_kato,
    seconds,
)
from kato.cli.errors import reported
from kato.errors import ExitCode

if TYPE_CHECKING:
    from kato.config import Cluster
    from kato.data.schedule import RunOptions

schedule_app = typer.Typer(
    help="Scheduled exports: entries in root's crontab on the core node, with retention.",
    no_args_is_help=True,
)

DEST = typer.Option(..., "--dest", help="The directory on the core node the archives go to.")
KEEP = typer.Option(
    None, "--keep", help="Keep the newest N archives that verify; delete older ones that verify."
)
COMPRESS = typer.Option("zstd", "--compress", help="zstd, gzip or none.")
METRICS = typer.Option(
    None, "--metrics", help="The node_exporter textfile the outcome is written to."
)
OFFSITE = typer.Option(
    None, "--offsite", metavar="REMOTE:PATH", help="Also upload each archive there (rclone)."
)


def _options(
    dest: str,
    keep: int | None,
    pick: Chosen,
    compress: str,
    wait: str,
    metrics: str | None,
    option: str,
    offsite: str | None = None,
    parallel: int | None = None,
) -> RunOptions:
    from kato.data.schedule import RunOptions

    return RunOptions(
        dest, keep, pick.roles, pick.excluded, compress, seconds(wait, option), metrics,
        offsite, parallel,
    )  # fmt: skip


@schedule_app.command()
def add(
    cron: str = typer.Option(..., "--cron", help="When, in cron's syntax, e.g. '0 3 * * *'."),
    dest: str = DEST,
    keep: int = KEEP,
    role: list[str] = ROLES,
    exclude: list[str] = EXCLUDE_ROLES,
    compress: str = COMPRESS,
    run_lock_wait: str = typer.Option(
        "30m", "--run-lock-wait", help="How long each run waits for the cluster lock."
    ),
    metrics: str = METRICS,
    kato: str = typer.Option(
        None,
        "--kato",
        help="The kato cron starts on the core node (default: this kato when run there, "
        "else /usr/local/bin/kato).",
    ),
    cluster_file: str = typer.Option(
        None,
        "--cluster-file",
        help="The cluster file it reads there (default: this one when run on the core node, "
        "else /etc/kato/cluster.yaml).",
    ),
    offsite: str = OFFSITE,
    parallel: int = PARALLEL,  # written into the crontab line: each run's --parallel
    lock_wait: str = LOCK_WAIT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the crontab line; write nothing."),
    as_json: bool = JSON,
) -> None:
    """Add an export to root's crontab on the core node; print its id and line."""
    with reported():
        from kato.data import schedule

        cluster, pick = load_chosen(None, None, role, exclude)
        options = _options(
            dest, keep, pick, compress, run_lock_wait, metrics, "--run-lock-wait", offsite,
            parallel,
        )  # fmt: skip
        change = schedule.add(
            cluster,
            cron,
            options,
            lock_wait=seconds(lock_wait),
            dry_run=dry_run,
            command_line=invocation(),
            runner=schedule.runner_on_core(cluster, running_kato(), kato, cluster_file),
        )
    if as_json:
        output.document(change)
        return
    output.line(change.line.rstrip("\n"))
    verb = "would add" if dry_run else "added"
    output.info(f"{verb} schedule {change.entry.id}; its runs log to {change.entry.log}")


@schedule_app.command("list")
def list_(as_json: bool = JSON) -> None:
    """kato's export entries in root's crontab on the core node."""
    with reported():
        from kato.data import schedule

        found = schedule.entries(load_cluster())
    if as_json:
        output.document(found)
        return
    rows = [
        (
            e.id,
            e.cron if e.enabled else f"# {e.cron} (disabled)",
            e.dest or "?",
            str(e.keep) if e.keep else "all",
            e.log or "",
        )
        for e in found
    ]
    output.table(("ID", "SCHEDULE", "DEST", "KEEP", "LOG"), rows)


@schedule_app.command()
def remove(
    entry: str = typer.Argument(..., metavar="ID", help="The id `list` shows."),
    lock_wait: str = LOCK_WAIT,
    dry_run: bool = DRY_RUN,
    as_json: bool = JSON,
) -> None:
    """Remove one export entry from root's crontab (no other line changes)."""
    with reported():
        from kato.data import schedule

        gone = schedule.remove(
            load_cluster(),
            entry,
            lock_wait=seconds(lock_wait),
            dry_run=dry_run,
            command_line=invocation(),
        )
    if as_json:
        output.document({"removed": gone, "dry_run": dry_run})
        return
    verb = "would remove" if dry_run else "removed"
    output.info(f"{verb} schedule {gone.id} ({gone.cron}, to {gone.dest})")


@schedule_app.command("run")
def run_(
    dest: str = DEST,
    keep: int = KEEP,
    role: list[str] = ROLES,
    exclude: list[str] = EXCLUDE_ROLES,
    old_only: list[str] = OLD_ONLY,
    compress: str = COMPRESS,
    lock_wait: str = LOCK_WAIT,
    metrics: str = METRICS,
    parallel: int = PARALLEL,
    dry_run: bool = DRY_RUN,
    offsite: str = OFFSITE,
    as_json: bool = JSON,
) -> None:
    """One scheduled run (what cron calls): export into --dest, verify, retention, metric."""
    with reported():
        cluster, pick = load_chosen(parallel, None, [*(role or []), *(old_only or [])], exclude)
    if dry_run:
        _plan_run(cluster, dest, keep, pick, compress, as_json)
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    output.info(f"{stamp} kato data schedule run: export to {dest}")
    with reported(), output.progress() as progress:
        from kato.data import scheduled

        options = _options(
            dest, keep, pick, compress, lock_wait, metrics, "--lock-wait", offsite, parallel
        )
        report = scheduled.run(cluster, options, command=invocation(), progress=progress)
        for problem in report.problems:
            output.warn(problem)
        error = scheduled.outcome_error(report)
        if error is not None:
            raise error
    if as_json:
        output.document(report)
        return
    kept = report.retention
    output.line(f"archive {report.archive} ({report.bytes} bytes, {report.seconds:.1f}s)")
    if kept is not None:
        output.line(f"kept: {', '.join(kept.plan.keep)}")
        output.line(f"deleted: {', '.join(kept.deleted) or 'none'}")
    if report.offsite is not None:
        output.line(f"uploaded: {report.offsite}")
    if report.offsite_retention is not None:
        away = report.offsite_retention
        output.line(f"off-site kept: {', '.join(away.plan.keep)}")
        output.line(f"off-site deleted: {', '.join(away.deleted) or 'none'}")
    output.info(f"outcome written to {report.metrics}")


def _plan_run(
    cluster: Cluster,
    dest: str,
    keep: int | None,
    pick: Chosen,
    compress: str,
    as_json: bool,
) -> None:
    with reported(), output.progress() as progress:
        from kato.data import scheduled

        options = _options(dest, keep, pick, compress, "0", None, "--lock-wait")
        planned = scheduled.plan(cluster, options, progress=progress)
    if as_json:
        output.document(planned)
        return
    output.line(f"plan: scheduled run into {dest} (nothing is read, written or deleted)")
    for read in planned.export.plan:
        source = read.source
        output.line(f"  export {source.node}: {source.role} {source.data_dir} {source.path}")
    if keep is not None:
        output.line(f"  keep: {', '.join(planned.keep)}")
        output.line(f"  delete: {', '.join(planned.delete) or 'none'}")


def backups(
    directory: str = typer.Argument(
        ..., metavar="DIR", help="Where the archives are: a directory, or off-site REMOTE:PATH."
    ),
    no_verify: bool = typer.Option(False, "--no-verify", help="List only; do not verify."),
    verify: bool = typer.Option(
        False, "--verify", help="Off-site: download and verify each archive (local: the default)."
    ),
    as_json: bool = JSON,
) -> None:
    """The archives in DIR, newest first, with size, age and verify status (exit 6: one fails)."""
    from pathlib import Path

    with reported(), output.progress() as progress:
        from kato.data import backups as listing
        from kato.data import offsite

        at = offsite.parse_location(directory)
        if at is None:
            found = listing.list_backups(Path(directory), verify=not no_verify, progress=progress)
        else:
            found = offsite.list_offsite(
                load_cluster(), at, verify=verify and not no_verify, progress=progress
            )
    if as_json:
        output.document(found)
    else:
        rows = [(b.name, _size(b.bytes), _age(b.age_seconds), b.status) for b in found.backups]
        output.table(("ARCHIVE", "SIZE", "AGE", "VERIFY"), rows)
    if found.invalid:
        raise typer.Exit(int(ExitCode.ARCHIVE_INVALID))


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _age(age: float) -> str:
    minutes = int(age // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"
