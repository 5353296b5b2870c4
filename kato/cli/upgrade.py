"""`kato upgrade plan|stage|in-place|rollback|status`: move the platform to another release."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from kato import output
from kato.cli import upgrade_graceful, upgrade_tasks
from kato.cli.common import DRY_RUN, JSON, LOCK_WAIT, PARALLEL, invocation, load_cluster, seconds
from kato.cli.errors import reported
from kato.cli.results import exit_for
from kato.cli.upgrade_common import (
    ALLOW_DOWNGRADE,
    BACKUP_DIR,
    NO_BACKUP,
    REPO,
    VERSION,
    finish,
    options,
    show_plan,
)

if TYPE_CHECKING:
    pass

app = typer.Typer(
    help="Upgrades: plan, stage, in-place, prep, takeover, rollback, status, resume, tasks.",
    no_args_is_help=True,
)


@app.command("plan")
def plan(
    version: str = VERSION,
    kind: str = typer.Option(
        "in-place", "--kind", help="in-place, graceful (prep + takeover) or stage."
    ),
    allow_downgrade: bool = ALLOW_DOWNGRADE,
    repo: str = REPO,
    parallel: int = PARALLEL,
    as_json: bool = JSON,
) -> None:
    """The preflight of an upgrade to VERSION, changing nothing: every node reachable and
    healthy, the whole release verified, kato's version in its range, graceful only within a
    major, no downgrade unless allowed, room to stage, patches not carried, and the exact
    sequence. Exit 7 when refused."""
    with reported():
        from kato.errors import UsageError
        from kato.upgrade import preflight, prepare

        if kind not in preflight.KINDS:
            raise UsageError(f"--kind {kind!r}", hint=f"one of {', '.join(preflight.KINDS)}")
        result = prepare.plan(
            load_cluster(parallel), version, kind=kind, allow_downgrade=allow_downgrade, repo=repo
        )
        if as_json:
            output.document(result)
        else:
            show_plan(result)
        prepare.refuse(result)


@app.command("stage")
def stage(
    version: str = VERSION,
    repo: str = REPO,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    parallel: int = PARALLEL,
    as_json: bool = JSON,
) -> None:
    """Upload, verify and unpack VERSION on every node in parallel, touching nothing that
    runs (SetOps' "create"). Idempotent. Exit 3 if some nodes failed, 7 if refused."""
    with reported():
        from kato.upgrade import stage as staging

        result = staging.stage(
            load_cluster(parallel),
            version,
            repo=repo,
            dry_run=dry_run,
            lock_wait=seconds(lock_wait),
            command=invocation(),
        )
    if as_json:
        output.document(result)
    else:
        verb = "would" if dry_run else "did"
        output.line(f"stage {result.version} (digest {result.digest[:12]}): {verb}")
        for node in result.nodes:
            failure = result.failed.get(node.node)
            output.line(
                f"  {node.shown(result.version)}"
                + (f": FAILED {failure.message}" if failure else "")
            )
        if dry_run:
            output.line("nothing was changed (--dry-run)")
    raise typer.Exit(0 if dry_run else exit_for(result.staged, result.failed))


@app.command("in-place")
def in_place(
    version: str = VERSION,
    backup_dir: str = BACKUP_DIR,
    no_backup: bool = NO_BACKUP,
    allow_downgrade: bool = ALLOW_DOWNGRADE,
    repo: str = REPO,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    parallel: int = PARALLEL,
    as_json: bool = JSON,
) -> None:
    """Upgrade in place: preflight, stage, export what the migrations touch, stop the
    platform, activate VERSION everywhere, migrate, start in role order behind the health
    gate. A failed gate rolls every node back (exit 3). Run it again to resume."""
    with reported(), output.progress() as progress:
        from kato.upgrade import inplace

        how = options(
            progress, repo, lock_wait, dry_run=dry_run, backup_dir=backup_dir, no_backup=no_backup
        )
        cluster = load_cluster(parallel)
        result = inplace.in_place(cluster, version, how, allow_downgrade=allow_downgrade)
    finish(result, as_json)


@app.command("rollback")
def rollback(
    yes: bool = typer.Option(False, "--yes", help="Restore the pre-upgrade export without asking."),
    repo: str = REPO,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    parallel: int = PARALLEL,
    as_json: bool = JSON,
) -> None:
    """Return every node to the release the last upgrade started from (reverse order). When a
    migration ran, the pre-upgrade export is restored: it says what will be lost and asks."""
    with reported():
        from kato.upgrade import rollback as rolling

        cluster = load_cluster(parallel)
        planned = rolling.rollback(cluster, dry_run=True, repo=repo)
        for step in planned.steps:
            output.line(f"  {step}")
        if dry_run:
            output.line("nothing was changed (--dry-run)")
            raise typer.Exit(0)
        confirmed = yes or (
            planned.restore is not None
            and sys.stdin.isatty()
            and typer.confirm("restore the pre-upgrade export and lose later changes?")
        )
        with output.progress() as progress:
            result = rolling.rollback(
                cluster,
                confirmed=confirmed,
                repo=repo,
                lock_wait=seconds(lock_wait),
                command=invocation(),
                progress=progress,
            )
    if as_json:
        output.document(result)
    else:
        output.line(f"rolled back {result.leaving} -> {result.target} in {result.seconds:.1f}s")


@app.command("status")
def status(parallel: int = PARALLEL, as_json: bool = JSON) -> None:
    """The last upgrade (kind, from, to, phase, result, downtime, export) and where each node
    is; says how to go on when it was interrupted. Exit 3 if some nodes did not answer."""
    with reported():
        from kato.upgrade import status as upgrade_status

        result = upgrade_status.upgrade_status(load_cluster(parallel))
    if as_json:
        output.document(result)
        raise typer.Exit(3 if result.unreachable else 0)
    rec = result.record
    if rec is not None:
        output.line(
            f"upgrade {rec.id} ({rec.kind}) {rec.source} -> {rec.target}: phase {rec.phase}"
            + (f", downtime {rec.downtime:.1f}s" if rec.downtime is not None else "")
        )
        if rec.backup:
            output.line(f"pre-upgrade export: {rec.backup} ({', '.join(rec.backup_roles)})")
        if rec.migrated:
            output.line(f"migrations run: {', '.join(rec.migrated)}")
    target = rec.target.upper() if rec else "TARGET"
    output.table(
        ("NODE", "CURRENT", "PREVIOUS", target),
        [(r.node, r.current or "-", r.previous or "-", r.target) for r in result.nodes],
    )
    output.line(result.next_step)
    raise typer.Exit(3 if result.unreachable else 0)


@app.command("resume")
def resume(
    backup_dir: str = BACKUP_DIR,
    repo: str = REPO,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    parallel: int = PARALLEL,
    as_json: bool = JSON,
) -> None:
    """Continue the interrupted upgrade (as running its command again does): an in-place
    upgrade to its end, a graceful one's prep to prepped, its takeover to its end."""
    with reported(), output.progress() as progress:
        from kato.upgrade.resume import resume as resuming

        how = options(progress, repo, lock_wait, dry_run=dry_run, backup_dir=backup_dir)
        result = resuming(load_cluster(parallel), how)
    finish(result, as_json)


app.command("prep")(upgrade_graceful.prep)
app.command("takeover")(upgrade_graceful.takeover)
app.command("task")(upgrade_tasks.task)
app.command("tasks")(upgrade_tasks.tasks)
