"""What the `kato upgrade` commands share: their options and how an outcome is shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from kato import output

if TYPE_CHECKING:
    from kato.progress import Progress
    from kato.upgrade.inplace import UpgradeOutcome
    from kato.upgrade.options import Options
    from kato.upgrade.preflight import Preflight

VERSION = typer.Argument(..., help="The release to go to (see `kato release list`).")
REPO = typer.Option(None, "--repo", help="The release repository (default: the cluster file's).")
ALLOW_DOWNGRADE = typer.Option(
    False, "--allow-downgrade", help="Allow going to an older release than the running one."
)


BACKUP_DIR = typer.Option(
    "/var/lib/kato/upgrade-backups",
    "--backup-dir",
    help="Where the pre-upgrade export is written (on the machine running kato).",
)
NO_BACKUP = typer.Option(
    False,
    "--no-backup",
    help="Do not export the data the migrations touch (rollback cannot restore it).",
)


def options(
    progress: Progress,
    repo: str | None,
    lock_wait: str,
    *,
    dry_run: bool = False,
    backup_dir: str | None = None,
    no_backup: bool = False,
) -> Options:
    """The parsed options every upgrade command hands its domain function as one value."""
    from kato.cli.common import invocation, seconds
    from kato.upgrade.options import DEFAULT_BACKUP_DIR, Options

    return Options(
        repo,
        backup_dir or DEFAULT_BACKUP_DIR,
        no_backup,
        dry_run,
        seconds(lock_wait),
        tuple(invocation()),
        progress,
    )


def show_plan(result: Preflight) -> None:
    output.line(
        f"upgrade {result.running or 'nothing'} -> {result.version} ({result.kind}, "
        f"{result.direction}; digest {result.digest[:12]})"
    )
    for check in result.checks:
        output.line(f"  ok: {check}")
    for refusal in result.refusals:
        output.line(f"  REFUSED {refusal.check}: {refusal.message}")
    for patch in result.dropped_patches:
        output.line(f"  patch not carried by {result.version}: {patch}")
    if result.nothing_to_do:
        output.line(f"every node runs {result.version} already: nothing to do")
        return
    output.line("sequence:")
    for number, step in enumerate(result.sequence, 1):
        output.line(f"  {number}. {step}")


def finish(result: UpgradeOutcome, as_json: bool) -> None:
    if as_json:
        output.document(result)
        raise typer.Exit(result.exit_code)
    if result.plan is not None and (result.dry_run or result.result == "nothing to do"):
        show_plan(result.plan)
    for note in result.notes:
        output.warn(note)
    if result.dry_run:
        for number, step in enumerate(result.steps, 1):
            output.line(f"  {number}. {step}")
        output.line("nothing was changed (--dry-run)")
    elif result.result == "done" and result.kind == "in-place":
        output.line(
            f"upgraded {result.source} -> {result.target} in {result.seconds:.1f}s; "
            f"downtime {result.downtime:.1f}s (first role stopped -> every role healthy)"
            + (f"; pre-upgrade export: {result.backup}" if result.backup else "")
        )
    elif result.result == "done" and result.kind == "takeover":
        output.line(
            f"took over {result.source} -> {result.target} in {result.seconds:.1f}s; the "
            f"stopped roles were down {result.downtime or 0:.1f}s after the routers moved"
        )
    elif result.result == "prepped":
        output.line(
            f"prepped {result.source} -> {result.target}: the routers and apps keep serving; "
            f"next: kato upgrade takeover {result.target}"
        )
    elif result.result == "rolled back":
        output.error(
            f"the upgrade to {result.target} failed ({result.failure}); every node was rolled "
            f"back to {result.source} and is healthy",
            hint=f"`kato upgrade status` and `kato history` show what happened; "
            f"`kato release show {result.target}`",
        )
    raise typer.Exit(result.exit_code)
