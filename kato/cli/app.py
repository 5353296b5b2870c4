"""The `kato` command: global options and the command groups."""

from __future__ import annotations

import contextlib
import os
import sys

import typer

from kato import __version__
from kato.cli import (
    check,
    common,
    config,
    data,
    errors,
    examples,
    lock,
    node,
    patch,
    platform,
    release,
    relocate,
    run,
    sandbox,
    status,
    upgrade,
)
from kato.errors import ExitCode

app = typer.Typer(
    name="kato",
    help="Administer a platform cluster over SSH: status, patches, data, storage, upgrades.",
    no_args_is_help=True,
    add_completion=True,  # kato --install-completion / --show-completion
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: flags render as flags, examples as written
)
app.add_typer(config.app, name="config")
app.add_typer(node.app, name="node")
app.add_typer(lock.app, name="lock")
app.add_typer(patch.app, name="patch")
app.command("status")(status.status)
app.command("install")(platform.install)
app.command("uninstall")(platform.uninstall)
app.command("start", context_settings=platform.OLD_ROLES)(platform.start)
app.command("stop", context_settings=platform.OLD_ROLES)(platform.stop)
app.command("restart", context_settings=platform.OLD_ROLES)(platform.restart)
app.command("version")(status.version)
app.command("check")(check.check)
app.command("history")(lock.history)
app.command("run", context_settings={"allow_interspersed_args": False})(run.run)
app.add_typer(data.app, name="data")
app.command("relocate")(relocate.relocate)
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(release.app, name="release")
app.add_typer(upgrade.app, name="upgrade")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"kato {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print kato's version and exit.",
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks for errors, and what kato ships to the nodes."
    ),
    cluster: str = typer.Option(
        None,
        "--cluster",
        help="The cluster file (default: $KATO_CLUSTER, then /etc/kato/cluster.yaml).",
    ),
) -> None:
    """kato: administer a platform cluster over SSH."""
    errors.debug = debug
    if debug:
        import logging

        logging.basicConfig(level=logging.INFO, format="kato: %(message)s")
    common.cluster_flag = cluster


def _finish(group: typer.Typer, path: str = "") -> None:
    """Every command's --help ends with its examples (cli/examples.py), in plain help."""
    group.rich_markup_mode = None
    for command in group.registered_commands:
        assert command.callback is not None
        name = command.name or command.callback.__name__.replace("_", "-")
        command.epilog = command.epilog or examples.epilog(f"{path}{name}")
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _finish(sub.typer_instance, f"{path}{sub.name} ")


_finish(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # outside a command's own handling (e.g. while parsing)
        _interrupted()
    except SystemExit as exc:
        if exc.code == ExitCode.INTERRUPTED:
            _interrupted()
        raise


def _interrupted() -> None:
    """Exit 130 now: the command has undone what it could on its way out; threads still
    waiting on a node (up to its timeouts) must not keep kato running."""
    with contextlib.suppress(OSError, ValueError):  # a closed pipe
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(int(ExitCode.INTERRUPTED))
