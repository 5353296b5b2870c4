"""`kato run [--role R] [--node N] [--serial K] [--wait-healthy] -- CMD`: the runbook primitive."""

from __future__ import annotations

import typer

from kato import output
from kato.cli.common import (
    DRY_RUN,
    JSON,
    LOCK_WAIT,
    NODES,
    PARALLEL,
    ROLES,
    invocation,
    load_chosen,
    seconds,
)
from kato.cli.errors import reported
from kato.cli.results import exit_for, failure_rows


def run(
    argv: list[str] = typer.Argument(..., metavar="-- CMD...", help="The command and its args."),
    node: list[str] = NODES,
    role: list[str] = ROLES,
    serial: int = typer.Option(None, "--serial", help="K nodes at a time (default: all)."),
    wait_healthy: bool = typer.Option(
        False,
        "--wait-healthy",
        help="After each batch, wait "
        "until its nodes answer again and their roles are "
        "healthy; stop at the first that does not.",
    ),
    wait_timeout: str = typer.Option(
        "5m",
        "--wait-timeout",
        help="With --wait-healthy: how long each node may take to be healthy again "
        "(e.g. 90s, 10m).",
    ),
    parallel: int = PARALLEL,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Run a command on the cluster's nodes (quoted as one argv: no shell on this side)."""
    with reported():
        from kato import run as runbook

        cluster, pick = load_chosen(parallel, node, role)
        outcome = runbook.run(
            cluster,
            argv,
            names=pick.node_list,
            roles=pick.role_list,
            serial=serial,
            wait_healthy=wait_healthy,
            wait_timeout=seconds(wait_timeout, "--wait-timeout"),
            lock_wait=seconds(lock_wait),
            dry_run=dry_run,
            command=invocation(),
        )
    if as_json:
        output.document(outcome)
    elif outcome.dry_run:
        for i, batch in enumerate(outcome.plan.batches, 1):
            output.line(
                f"batch {i}: {', '.join(batch)}: {' '.join(outcome.plan.argv)}"
                + (" then wait until healthy" if outcome.plan.wait_healthy else "")
            )
    else:
        rows = [
            (n, str(r.status), r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "")
            for n, r in outcome.results.items()
        ]
        output.table(("NODE", "EXIT", "OUTPUT (last line)"), rows)
        if outcome.failed:
            output.table(("NODE", "PHASE", "ERROR"), failure_rows(outcome.failed))
        if outcome.skipped:
            output.warn(f"not run (the rollout stopped): {', '.join(outcome.skipped)}")
    raise typer.Exit(exit_for(outcome.results, outcome.failed))
