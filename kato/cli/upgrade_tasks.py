"""`kato upgrade task|tasks`: one-off tasks with a release's code, and their record."""

from __future__ import annotations

import typer

from kato import output
from kato.cli.common import (
    DRY_RUN,
    JSON,
    LOCK_WAIT,
    NODES,
    ROLES,
    invocation,
    load_chosen,
    load_cluster,
    seconds,
)
from kato.cli.errors import reported
from kato.cli.upgrade_common import VERSION


def task(
    version: str = VERSION,
    argv: list[str] = typer.Argument(..., metavar="-- CMD...", help="The command and its args."),
    role: list[str] = ROLES,
    node: list[str] = NODES,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Run a one-off task with VERSION's code (staged or running) on a node carrying one --role
    (the first, or --node), in
    /var/lib/kato/releases/VERSION/ROLE, and record it (`kato upgrade tasks`). Exits with the
    task's status when it fails (1 if that is above 255), 7 when VERSION is not staged there."""
    with reported():
        from kato.errors import UsageError
        from kato.upgrade import tasks as one_off

        cluster, pick = load_chosen(None, node, role)
        if len(pick.roles) != 1 or len(pick.nodes) > 1:
            raise UsageError(
                "a task runs in one place: give one --role, and at most one --node",
                hint="e.g. kato upgrade task 1.2.0 --role controller -- ./bin/migrate",
            )
        result = one_off.task(
            cluster,
            version,
            pick.roles[0],
            argv,
            node=next(iter(pick.nodes), None),
            dry_run=dry_run,
            lock_wait=seconds(lock_wait),
            command=invocation(),
        )
    if as_json:
        output.document(result)
    elif dry_run:
        output.line(
            f"would run `{' '.join(result.command)}` on {result.node} in "
            f"{result.release}/{result.role}; nothing was changed (--dry-run)"
        )
        raise typer.Exit(0)
    else:
        output.line(
            f"task {result.id} on {result.node} ({result.release}/{result.role}): exit "
            f"{result.exit} after {result.seconds:.1f}s; last line: {result.last_line or '-'}"
        )
    raise typer.Exit(0 if result.exit == 0 else min(result.exit, 255) or 1)


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
