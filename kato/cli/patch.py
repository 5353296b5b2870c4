"""`kato patch status|install|revert`: patches from the patch repository, node by node."""

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
    THIS_NODE,
    VERBOSE,
    invocation,
    load_chosen,
    load_cluster,
    seconds,
)
from kato.cli.errors import reported
from kato.cli.results import render

if TYPE_CHECKING:
    from kato.patch.rollout import RolloutOutcome

app = typer.Typer(help="Patches: status, install, revert.", no_args_is_help=True)
REPO = typer.Option(None, "--repo", help="The patch repository (default: the cluster file's).")
NO_RESTART = typer.Option(
    False, "--no-restart", help="Apply without restarting the roles (status: restart pending)."
)


@app.command("status")
def status(repo: str = REPO, parallel: int = PARALLEL, as_json: bool = JSON) -> None:
    """The patches for the cluster's platform version and the nodes each is installed on."""
    with reported():
        from kato.patch import status as patch_status

        report = patch_status.status(load_cluster(parallel), repo)
    if as_json:
        output.document(report)
    else:
        for line in patch_status.render(report):
            output.line(line)
    raise typer.Exit(3 if report.unreachable else 0)


def _done(count: int) -> str:
    return f"{count} patch(es) done" if count else "restarted"


def _report(outcome: RolloutOutcome, as_json: bool, verbose: bool) -> None:
    render(outcome, as_json, done=_done, verbose=verbose)


@app.command("install")
def install(
    names: list[str] = typer.Argument(None, metavar="[NAME...]"),
    node: list[str] = NODES,
    only_this_node: bool = THIS_NODE,
    parallel: int = PARALLEL,
    canary: str = typer.Option(
        None, "--canary", help="Patch this node first, healthy, then the rest."
    ),
    no_restart: bool = NO_RESTART,
    repo: str = REPO,
    dry_run: bool = DRY_RUN,
    verbose: bool = VERBOSE,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Install every applicable patch, or the named ones, on the nodes carrying their roles."""
    with reported():
        from kato.patch import install as installer

        cluster, pick = load_chosen(parallel, node)
        options = installer.Options(
            names, pick.node_list, not no_restart, canary, only_this_node, repo
        )
        out = installer.install(
            cluster,
            options,
            dry_run=dry_run,
            lock_wait=seconds(lock_wait),
            command=invocation(),
        )
    _report(out, as_json, verbose)


@app.command("revert")
def revert(
    name: str = typer.Argument(..., metavar="NAME"),
    node: list[str] = NODES,
    parallel: int = PARALLEL,
    no_restart: bool = NO_RESTART,
    repo: str = REPO,
    dry_run: bool = DRY_RUN,
    verbose: bool = VERBOSE,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Restore the files a patch replaced, run its revert script, restart, drop the record."""
    with reported():
        from kato.patch import revert as reverter

        cluster, pick = load_chosen(parallel, node)
        out = reverter.revert(
            cluster,
            name,
            pick.node_list,
            restart=not no_restart,
            repo=repo,
            dry_run=dry_run,
            lock_wait=seconds(lock_wait),
            command=invocation(),
        )
    _report(out, as_json, verbose)
