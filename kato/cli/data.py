"""`kato data export|verify|import|cleanup`: the cluster's data in one verified archive."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from kato import output
from kato.cli.common import (
    DRY_RUN,
    EXCLUDE_ROLES,
    JSON,
    LOCK_WAIT,
    NODES,
    OLD_ONLY,
    PARALLEL,
    ROLES,
    THIS_NODE,
    Chosen,
    invocation,
    load_chosen,
    load_cluster,
)
from kato.cli.common import seconds as duration
from kato.cli.data_schedule import backups, schedule_app
from kato.cli.errors import reported

if TYPE_CHECKING:
    from kato.config import Cluster
    from kato.data.export import ExportResult

app = typer.Typer(no_args_is_help=True, help="Export, verify and import the cluster's data.")


def chosen_nodes(pick: Chosen, cluster: Cluster, this_node: bool) -> list[str]:
    from kato.connect import this_node as here

    return [here(cluster).name] if this_node else list(pick.nodes)


@app.command()
def export(
    dest: str = typer.Argument(".", help="A file, a directory (a name is chosen), or - ."),
    role: list[str] = ROLES,
    old_only: list[str] = OLD_ONLY,
    exclude: list[str] = EXCLUDE_ROLES,
    node: list[str] = NODES,
    only_this_node: bool = THIS_NODE,
    compress: str = typer.Option("zstd", "--compress", help="zstd, gzip or none."),
    to: str = typer.Option(
        None, "--to", metavar="REMOTE:PATH", help="Then upload it there with rclone, checked."
    ),
    max_entries: int = typer.Option(
        None,
        "--max-entries",
        help="Refuse (exit 7, nothing published) when the trees hold more files, dirs and "
        "links (default: data.max_entries of the cluster file, else 500000).",
    ),
    parallel: int = PARALLEL,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Stream the data of every role with data into one archive, verify it, then publish it."""
    with reported(), output.progress() as progress:
        from kato.data import export as exporter
        from kato.errors import UsageError

        if dest == "-" and as_json and not dry_run:
            raise UsageError(
                "--json and DEST - both want standard output",
                hint="export to a file to get the JSON summary",
            )
        if dest == "-" and sys.stdout.isatty() and not dry_run:
            raise UsageError(
                "not writing an archive to a terminal",
                hint="redirect standard output to a file or a pipe, or give DEST",
            )
        cluster, pick = load_chosen(parallel, node, [*(role or []), *(old_only or [])], exclude)
        options: dict[str, Any] = dict(
            only=list(pick.roles),
            exclude=list(pick.excluded),
            nodes=chosen_nodes(pick, cluster, only_this_node),
            compress=compress,
            lock_wait=duration(lock_wait),
            dry_run=dry_run,
            command=invocation(),
            progress=progress,
            stdout=sys.stdout.buffer,
            max_entries=max_entries,
        )
        if to is None:
            done = exporter.export(cluster, dest, **options)
        else:
            from kato.data.shipping import export_to

            shipped = export_to(cluster, dest, to, **options)
            done = shipped.export
    if to is not None and as_json:
        output.document(shipped)  # the export and its upload
        return
    _report_export(done, dry_run, as_json)
    if to is not None and not dry_run:
        up = shipped.upload
        output.info(f"uploaded to {up.remote}, {up.bytes} bytes, checked: {up.check}")


def _report_export(done: ExportResult, dry_run: bool, as_json: bool) -> None:
    if as_json:
        output.document(done)
        return
    if dry_run:
        output.line(f"plan: export to {done.destination} (nothing was read or written)")
        for read in done.plan:
            source = read.source
            output.line(
                f"  {source.node}: {source.role} {source.data_dir} {source.path} "
                f"({source.spec.kind}, about {read.estimate} bytes): {' '.join(read.argv)}"
            )
        return
    for warning in done.warnings:
        output.warn(warning)
    assert done.manifest is not None
    rate = done.data_bytes / max(done.seconds, 1e-6) / 1e6
    output.info(
        f"exported {len(done.manifest.members)} data dirs, {done.data_bytes} bytes "
        f"({done.bytes} in the archive) in {done.seconds:.1f}s ({rate:.0f} MB/s), verified: "
        f"{done.path or 'standard output'}"
    )


MAX_ENTRIES = typer.Option(
    None,
    "--max-entries",
    help="Refuse archives whose trees hold more files, dirs and links "
    "(default: data.max_entries of the cluster file, else 500000).",
)
MAX_RATIO = typer.Option(
    None,
    "--max-ratio",
    help="Refuse archives declaring more than N bytes of data per byte of archive "
    "(default: data.max_ratio of the cluster file, else 100).",
)


@app.command()
def verify(
    archive: str = typer.Argument(..., help="The archive file."),
    deep: bool = typer.Option(
        False, "--deep", help="Also load each database dump into a scratch instance on a node."
    ),
    max_entries: int = MAX_ENTRIES,
    max_ratio: float = MAX_RATIO,
    as_json: bool = JSON,
) -> None:
    """Read an archive back whole: manifest, every member's size and sha256, safe paths."""
    with reported(), output.progress() as progress:
        from kato.config import DataLimits
        from kato.data import deep as deep_check
        from kato.data.limits import resolved
        from kato.data.source import archive_file
        from kato.data.verify import verify_archive

        archive_file(archive)  # a pipe, a directory or a dangling link is named as such
        if deep:
            cluster = load_cluster()
            within = resolved(cluster.data, max_entries, max_ratio)
            result = deep_check.verify_deep(cluster, archive, progress=progress, within=within)
        else:
            within = resolved(DataLimits(), max_entries, max_ratio)
            result = verify_archive(archive, progress=progress, within=within)
    if as_json:
        output.document(result)
        return
    manifest = result.manifest
    output.info(
        f"{archive}: ok, format {manifest.format}, cluster {manifest.cluster}, platform "
        f"{manifest.platform_version or 'unknown'}, created {manifest.created}, "
        f"{result.members} members, {result.bytes} bytes, {result.entries} files in trees"
        + (", dumps restore" if deep else "")
    )


@app.command("import")
def import_(
    source: str = typer.Argument(
        ...,
        help="An archive file, - for standard input, ssh://\\[user@]host\\[:port], or an "
        "off-site REMOTE:PATH/NAME.",
    ),
    role: list[str] = ROLES,
    node: list[str] = NODES,
    only_this_node: bool = THIS_NODE,
    spool: str = typer.Option(
        None, "--spool", help="Where a streamed archive is kept while verified (default: TMPDIR)."
    ),
    max_entries: int = MAX_ENTRIES,
    max_ratio: float = MAX_RATIO,
    parallel: int = PARALLEL,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Verify the whole archive, stage each member on its node, then switch role by role."""
    with reported(), output.progress() as progress:
        from pathlib import Path

        from kato.data import import_ as importer
        from kato.data.limits import resolved

        cluster, pick = load_chosen(parallel, node, role)
        done = importer.import_archive(
            cluster,
            source,
            only=list(pick.roles),
            nodes=chosen_nodes(pick, cluster, only_this_node),
            lock_wait=duration(lock_wait),
            dry_run=dry_run,
            command=invocation(),
            progress=progress,
            stdin=sys.stdin.buffer,
            spool=Path(spool) if spool else None,
            within=resolved(cluster.data, max_entries, max_ratio),
        )
    if as_json:
        output.document(done)
        return
    for note in done.notes:
        output.warn(note)
    title = "plan: import (nothing was changed)" if dry_run else f"imported {source}"
    rows = [
        (p.target.node, p.target.role, p.target.path, p.member.name, p.previous)
        for p in done.placements
    ]
    output.table(("NODE", "ROLE", "DATA DIR", "FROM", "PREVIOUS DATA KEPT IN"), rows, title=title)
    if not dry_run:
        output.info("the previous data stays until `kato data cleanup`")


@app.command()
def cleanup(
    node: list[str] = NODES,
    parallel: int = PARALLEL,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Remove the previous data that imports kept, and staging dirs left by failed ones."""
    with reported():
        from kato.data.cleanup import cleanup as clean

        cluster, pick = load_chosen(parallel, node)
        done = clean(
            cluster,
            nodes=list(pick.nodes),
            lock_wait=duration(lock_wait),
            dry_run=dry_run,
            command=invocation(),
        )
    if as_json:
        output.document(done)
    else:
        verb = "would remove" if dry_run else "removed"
        rows = [(x.node, x.path, str(x.bytes), verb) for x in done.leftovers]
        rows += [
            (f.node, "-", "-", f"failed in {f.phase}: {f.message}") for f in done.failed.values()
        ]
        output.table(("NODE", "PATH", "BYTES", "RESULT"), rows, title="kato data cleanup")
    raise typer.Exit(3 if done.failed else 0)


app.add_typer(schedule_app, name="schedule")
app.command("backups")(backups)
