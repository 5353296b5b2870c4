"""The `kato` command: global options and the command groups."""

from __future__ import annotations

import typer

from kato import __version__
from kato.cli import (
    common,
    config,
    data,
    errors,
    lock,
    node,
    patch,
    platform,
    relocate,
    run,
    sandbox,
    status,
)

app = typer.Typer(
    name="kato",
    help="Administer a platform cluster over SSH: status, patches, data, storage, upgrades.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(config.app, name="config")
app.add_typer(node.app, name="node")
app.add_typer(lock.app, name="lock")
app.add_typer(patch.app, name="patch")
app.command("status")(status.status)
app.command("install")(platform.install)
app.command("uninstall")(platform.uninstall)
app.command("start")(platform.start)
app.command("stop")(platform.stop)
app.command("restart")(platform.restart)
app.command("version")(status.version)
app.command("history")(lock.history)
app.command("run", context_settings={"allow_interspersed_args": False})(run.run)
app.add_typer(data.app, name="data")
app.command("relocate")(relocate.relocate)
app.add_typer(sandbox.app, name="sandbox")


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


def main() -> None:
    app()
