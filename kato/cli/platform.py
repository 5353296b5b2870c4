"""`kato install|uninstall`, `kato start|stop|restart [--role ROLE]...`."""

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
    ROLES,
    VERBOSE,
    invocation,
    load_chosen,
)
from kato.cli.common import seconds as duration
from kato.cli.errors import reported
from kato.cli.results import render

if TYPE_CHECKING:
    from kato.plan import PlanOutcome


def _report(outcome: PlanOutcome, as_json: bool, verbose: bool = False) -> None:
    render(
        outcome,
        as_json,
        done=lambda k: f"{k} steps",
        nothing="nothing to do, every node is there already",
        verbose=verbose,
    )


def install(
    version: str = typer.Option(None, "--version", help="Release version (default: newest)."),
    node: list[str] = NODES,
    parallel: int = PARALLEL,
    dry_run: bool = DRY_RUN,
    verbose: bool = VERBOSE,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Install a release's components on the nodes carrying each role (checksums first)."""
    with reported():
        from kato.platform import install as installer

        cluster, pick = load_chosen(parallel, node)
        out = installer.install(
            cluster,
            version,
            pick.node_list,
            dry_run=dry_run,
            lock_wait=duration(lock_wait),
            command=invocation(),
        )
    _report(out, as_json, verbose)


def uninstall(
    node: list[str] = NODES,
    parallel: int = PARALLEL,
    dry_run: bool = DRY_RUN,
    verbose: bool = VERBOSE,
    lock_wait: str = LOCK_WAIT,
    as_json: bool = JSON,
) -> None:
    """Stop the platform and remove its units and releases from the nodes (data dirs stay)."""
    with reported():
        from kato.platform import install as installer

        cluster, pick = load_chosen(parallel, node)
        out = installer.uninstall(
            cluster,
            pick.node_list,
            dry_run=dry_run,
            lock_wait=duration(lock_wait),
            command=invocation(),
        )
    _report(out, as_json, verbose)


# `kato restart router`, as runbooks written for older katos (and Stackato's kato) say it: words
# after the options are roles, given the same parse as --role, and left out of --help so that
# --role stays the one documented way.
OLD_ROLES = {"allow_extra_args": True}


def _old_roles(context: typer.Context) -> list[str]:
    stray = [word for word in context.args if word.startswith("-")]
    if stray:
        raise typer.BadParameter(f"no such option: {stray[0]}", param_hint="options")
    return list(context.args)


def _control(action: str):  # type: ignore[no-untyped-def]
    def command(
        context: typer.Context,
        role: list[str] = ROLES,
        node: list[str] = NODES,
        parallel: int = PARALLEL,
        dry_run: bool = DRY_RUN,
        verbose: bool = VERBOSE,
        lock_wait: str = LOCK_WAIT,
        as_json: bool = JSON,
    ) -> None:
        with reported():
            from kato.platform import control

            roles = [*(role or []), *_old_roles(context)]
            cluster, pick = load_chosen(parallel, node, roles)
            out = control.control(
                cluster,
                action,
                list(pick.roles),
                pick.node_list,
                dry_run=dry_run,
                lock_wait=duration(lock_wait),
                command=invocation(),
            )
        if verbose and not as_json:
            for line in out.definitions:
                output.info(line)
        _report(out, as_json, verbose)

    command.__doc__ = (
        f"{action.capitalize()} the platform's roles (all, or those --role names) in "
        "role order"
        + (", waiting for each to be healthy." if action != "stop" else " (reverse order).")
    )
    return command


start = _control("start")
stop = _control("stop")
restart = _control("restart")
