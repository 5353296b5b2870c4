"""`kato relocate status | cleanup | NAME NEW_LOCATION`: data dirs on bigger filesystems."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from kato import output
from kato.cli.common import (
    DRY_RUN,
    JSON,
    LOCK_WAIT,
    NODES,
    PARALLEL,
    invocation,
    load_chosen,
    seconds,
)
from kato.cli.errors import reported

if TYPE_CHECKING:
    from kato.relocate.cleanup import CleanupResult
    from kato.relocate.move import RelocateResult
    from kato.relocate.status import RelocateStatus


def relocate(
    what: str = typer.Argument(
        ..., help="status, cleanup, or the data dir to move (services, droplets, containers...)"
    ),
    new_location: str = typer.Argument(None, help="Where it goes, e.g. /mnt/ebs/droplets."),
    node: list[str] = NODES,
    parallel: int = PARALLEL,
    dry_run: bool = DRY_RUN,
    no_quota: bool = typer.Option(
        False, "--no-quota", help="Move containers without per-app quotas."
    ),
    app_limit: str = typer.Option("1G", "--app-limit", help="Each app's disk limit, e.g. 1G."),
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Move a data dir to NEW_LOCATION/<role> on each node (copy while running, stop only its
    roles, final delta, verify, switch, start, health); `status` shows where each lives;
    `cleanup` removes the old copies kept."""
    with reported(), output.progress() as progress:
        from kato.errors import UsageError
        from kato.relocate import cleanup, move, status

        cluster, pick = load_chosen(parallel, node)
        node = list(pick.nodes)
        if what in ("status", "cleanup") and new_location is not None:
            raise UsageError(f"kato relocate {what} takes no NEW_LOCATION")
        if what == "status":
            found = status.status(cluster, list(node or []))
            _status(found, as_json)
            raise typer.Exit(found.exit_code)
        if what == "cleanup":
            done = cleanup.cleanup(cluster, list(node or []), dry_run=dry_run,
                                   lock_wait=seconds(lock_wait), command=invocation())  # fmt: skip
            _cleanup(done, as_json)
            return
        if new_location is None:
            raise UsageError(f"kato relocate {what} needs NEW_LOCATION", hint="e.g. /mnt/ebs")
        options = move.Options(list(node or []), dry_run, no_quota, _bytes(app_limit),
                               seconds(lock_wait), invocation())  # fmt: skip
        result = move.relocate(cluster, what, new_location, options, progress)
    _moved(result, as_json)


def _bytes(text: str) -> int:
    from kato.sandbox.disk import parse_size

    return parse_size(text)


def _status(found: RelocateStatus, as_json: bool) -> None:
    if as_json:
        output.document(found)
        return
    rows = [
        (d.node, d.role, d.name, d.path + (" (moved)" if d.moved else ""), d.fstype, d.mount,
         _size(d.used), _size(d.free), d.quota, " ".join(d.old_copies) or "-",
         d.moving or "-")
        for d in found.dirs
    ]  # fmt: skip
    output.table(("NODE", "ROLE", "DATA DIR", "PATH", "FS", "MOUNT", "SIZE", "FREE", "QUOTA",
                  "OLD COPIES", "MOVING"), rows)  # fmt: skip
    for failure in found.unreachable:
        output.warn(f"{failure.node}: {failure.message}")


def _cleanup(done: CleanupResult, as_json: bool) -> None:
    if as_json:
        output.document(done)
        return
    verb = "would remove" if done.dry_run else "removed"
    for copy in done.copies:
        how = " (emptied: the units bind the new location there)" if copy.emptied_only else ""
        output.line(f"{copy.node}: {verb} {copy.role} {copy.name} old copy {copy.path}{how}")
    for skipped in done.skipped:
        output.warn(f"kept {skipped}")
    if not done.copies:
        output.info("no old copies to remove")


def _moved(result: RelocateResult, as_json: bool) -> None:
    for warning in result.warnings:
        output.warn(warning)
    if as_json:
        output.document(result)
        raise typer.Exit(result.exit_code)
    report = result.report
    if report is not None and report.failed_nodes:
        rows = [(r.node, r.shown, r.detail) for r in report.nodes]
        output.table(("NODE", "RESULT", "DETAIL"), rows, title=f"relocate {result.name}")
        first = next(iter(report.failed_nodes.values()))
        output.error(f"{first.node}: {first.message}", result.hint)
        raise typer.Exit(result.exit_code)
    for t in result.targets:
        if t.done:
            output.line(f"{t.node}: {t.role.name} {t.name} is at {t.dest}")
        elif result.dry_run:
            used = result.facts[t.node].paths[t.current].used
            output.line(
                f"{t.node}: would move {t.role.name} {t.name} ({_size(used)}) from {t.current} "
                f"to {t.dest}: copy while it runs, stop {', '.join(t.role.units)}, final delta, "
                "verify, switch, start, health"
            )
    for run in result.runs:
        for dest, entries in run.verified.items():
            output.line(f"{run.node}: {dest}: {entries} entries verified")
        if run.verified:
            output.line(f"{run.node}: roles down {run.downtime:.1f}s")
        for note in run.notes:
            output.info(note)
    if not result.dry_run and result.runs:
        output.info("the old copies are kept until `kato relocate cleanup`")


def _size(count: int) -> str:
    from kato.relocate.preflight import human_size

    return human_size(count)
