"""`kato upgrade plan|stage|in-place|rollback|status`: move the platform to another release."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from kato import output
from kato.cli.common import DRY_RUN, JSON, LOCK_WAIT, invocation, load_cluster, seconds
from kato.cli.errors import reported
from kato.cli.results import exit_for

if TYPE_CHECKING:
    from kato.upgrade.inplace import UpgradeOutcome
    from kato.upgrade.preflight import Preflight

app = typer.Typer(help="Upgrades: plan, stage, in-place, rollback, status.", no_args_is_help=True)
VERSION = typer.Argument(..., help="The release to go to (see `kato release list`).")
REPO = typer.Option(None, "--repo", help="The release repository (default: the cluster file's).")
ALLOW_DOWNGRADE = typer.Option(
    False, "--allow-downgrade", help="Allow going to an older release than the running one."
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


@app.command("plan")
def plan(
    version: str = VERSION,
    kind: str = typer.Option(
        "in-place", "--kind", help="in-place, graceful (prep + takeover) or stage."
    ),
    allow_downgrade: bool = ALLOW_DOWNGRADE,
    repo: str = REPO,
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
            load_cluster(), version, kind=kind, allow_downgrade=allow_downgrade, repo=repo
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
    as_json: bool = JSON,
) -> None:
    """Upload, verify and unpack VERSION on every node in parallel, touching nothing that
    runs (SetOps' "create"). Idempotent. Exit 3 if some nodes failed, 7 if refused."""
    with reported():
        from kato.upgrade import stage as staging

        result = staging.stage(
            load_cluster(),
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


def _finish(result: UpgradeOutcome, as_json: bool) -> None:
    if as_json:
        output.document(result)
        raise typer.Exit(result.exit_code)
    if result.plan is not None and (result.dry_run or result.result == "nothing to do"):
        show_plan(result.plan)
    for note in result.notes:
        output.warn(note)
    if result.dry_run:
        output.line("nothing was changed (--dry-run)")
    elif result.result == "done" and result.kind == "in-place":
        output.line(
            f"upgraded {result.source} -> {result.target} in {result.seconds:.1f}s; "
            f"downtime {result.downtime:.1f}s (first role stopped -> every role healthy)"
            + (f"; pre-upgrade export: {result.backup}" if result.backup else "")
        )
    elif result.result == "rolled back":
        output.error(
            f"the upgrade to {result.target} failed ({result.failure}); every node was rolled "
            f"back to {result.source} and is healthy",
            hint=f"`kato upgrade status` and `kato history` show what happened; "
            f"`kato release show {result.target}`",
        )
    raise typer.Exit(result.exit_code)


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


@app.command("in-place")
def in_place(
    version: str = VERSION,
    backup_dir: str = BACKUP_DIR,
    no_backup: bool = NO_BACKUP,
    allow_downgrade: bool = ALLOW_DOWNGRADE,
    repo: str = REPO,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Upgrade in place: preflight, stage, export what the migrations touch, stop the
    platform, activate VERSION everywhere, migrate, start in role order behind the health
    gate. A failed gate rolls every node back (exit 3). Run it again to resume."""
    with reported(), output.progress() as progress:
        from kato.upgrade import inplace

        result = inplace.in_place(
            load_cluster(),
            version,
            repo=repo,
            backup_dir=backup_dir,
            no_backup=no_backup,
            allow_downgrade=allow_downgrade,
            dry_run=dry_run,
            lock_wait=seconds(lock_wait),
            command=invocation(),
            progress=progress,
        )
    _finish(result, as_json)


@app.command("rollback")
def rollback(
    yes: bool = typer.Option(False, "--yes", help="Restore the pre-upgrade export without asking."),
    repo: str = REPO,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Return every node to the release the last upgrade started from (reverse order). When a
    migration ran, the pre-upgrade export is restored: it says what will be lost and asks."""
    with reported():
        from kato.upgrade import rollback as rolling

        cluster = load_cluster()
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
def status(as_json: bool = JSON) -> None:
    """The last upgrade (kind, from, to, phase, result, downtime, export) and where each node
    is; says how to go on when it was interrupted. Exit 3 if some nodes did not answer."""
    with reported():
        from kato.upgrade import status as upgrade_status

        result = upgrade_status.upgrade_status(load_cluster())
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
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Continue the interrupted upgrade (as running its command again does): an in-place
    upgrade to its end, a graceful one's prep to prepped, its takeover to its end."""
    with reported(), output.progress() as progress:
        from kato.errors import UsageError
        from kato.upgrade import graceful, inplace
        from kato.upgrade import status as upgrade_status
        from kato.upgrade import takeover as taking

        cluster = load_cluster()
        rec = upgrade_status.upgrade_status(cluster).record
        if rec is None or not rec.unfinished:
            raise UsageError("no upgrade is unfinished", hint="`kato upgrade status` says more")
        wait, command = seconds(lock_wait), invocation()
        if rec.kind == "in-place":
            result = inplace.in_place(
                cluster,
                rec.target,
                repo=repo,
                backup_dir=backup_dir,
                lock_wait=wait,
                command=command,
                progress=progress,
            )
        elif rec.phase in graceful.PREP:
            result = graceful.prep(
                cluster,
                rec.target,
                stateless=rec.stateless,
                repo=repo,
                backup_dir=backup_dir,
                lock_wait=wait,
                command=command,
                progress=progress,
            )
        else:
            result = taking.takeover(
                cluster, rec.target, repo=repo, lock_wait=wait, command=command, progress=progress
            )
    _finish(result, as_json)


@app.command("prep")
def prep(
    version: str = VERSION,
    stateless: bool = typer.Option(
        False,
        "--stateless",
        help="Leave the data services (postgresql, redis, filesystem) running.",
    ),
    backup_dir: str = BACKUP_DIR,
    no_backup: bool = NO_BACKUP,
    repo: str = REPO,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """First half of a graceful upgrade (within one major version): preflight, stage, export
    what the migrations touch, and stop every role that does not serve during the upgrade; the
    routers and the apps keep serving. Then `kato upgrade takeover VERSION`."""
    with reported(), output.progress() as progress:
        from kato.upgrade import graceful

        result = graceful.prep(
            load_cluster(),
            version,
            stateless=stateless,
            repo=repo,
            backup_dir=backup_dir,
            no_backup=no_backup,
            dry_run=dry_run,
            lock_wait=seconds(lock_wait),
            command=invocation(),
            progress=progress,
        )
    if result.result == "prepped" and not as_json:
        output.line(
            f"prepped {result.source} -> {result.target}: the routers and apps keep serving; "
            f"next: kato upgrade takeover {result.target}"
        )
    _finish(result, as_json)


@app.command("takeover")
def takeover(
    version: str = VERSION,
    repo: str = REPO,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Second half of a graceful upgrade: each router node in turn is drained from the load
    balancer, moved to VERSION, health-gated and put back; then the other roles start on
    VERSION in role order with the migrations. A failed gate rolls back (exit 3)."""
    with reported(), output.progress() as progress:
        from kato.upgrade import takeover as taking

        result = taking.takeover(
            load_cluster(),
            version,
            repo=repo,
            lock_wait=seconds(lock_wait),
            command=invocation(),
            progress=progress,
        )
    if result.result == "done" and not as_json:
        output.line(
            f"took over {result.source} -> {result.target} in {result.seconds:.1f}s; the "
            f"stopped roles were down {result.downtime or 0:.1f}s after the routers moved"
        )
    _finish(result, as_json)


@app.command("task")
def task(
    version: str = VERSION,
    argv: list[str] = typer.Argument(..., metavar="-- CMD...", help="The command and its args."),
    role: str = typer.Option(..., "--role", help="Run it where this role is, in its release dir."),
    node: str = typer.Option(None, "--node", help="This node (default: the first with the role)."),
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Run a one-off task with VERSION's code (staged or running) on a node carrying ROLE, in
    /var/lib/kato/releases/VERSION/ROLE, and record it (`kato upgrade tasks`). Exits with the
    task's status when it fails (1 if that is above 255), 7 when VERSION is not staged there."""
    with reported():
        from kato.upgrade import tasks as one_off

        result = one_off.task(
            load_cluster(),
            version,
            role,
            argv,
            node=node,
            lock_wait=seconds(lock_wait),
            command=invocation(),
        )
    if as_json:
        output.document(result)
    else:
        output.line(
            f"task {result.id} on {result.node} ({result.release}/{result.role}): exit "
            f"{result.exit} after {result.seconds:.1f}s; last line: {result.last_line or '-'}"
        )
    raise typer.Exit(0 if result.exit == 0 else min(result.exit, 255) or 1)


@app.command("tasks")
def tasks(
    limit: int = typer.Option(50, "--limit", help="How many of the last tasks."),
    as_json: bool = JSON,
) -> None:
    """The one-off tasks and migrations run so far: id, release, node, command, started,
    duration, exit status and last output line."""
    with reported():
        from kato.upgrade import tasks as one_off

        found = one_off.tasks(load_cluster(), limit)
    if as_json:
        output.document(found)
        return
    import datetime as dt

    output.table(
        ("ID", "RELEASE", "NODE", "COMMAND", "STARTED", "SECONDS", "EXIT", "LAST LINE"),
        [
            (
                t.id,
                t.release,
                t.node,
                " ".join(t.command),
                dt.datetime.fromtimestamp(t.started, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
                f"{t.seconds:.1f}",
                str(t.exit),
                t.last_line,
            )
            for t in found
        ],
    )
