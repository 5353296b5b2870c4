"""The `kato` command: global options and the command groups."""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from kato import __version__
from kato.cli import common, errors, examples, streams
from kato.errors import ExitCode

# Each command: the CLI module holding it, its name there (a typer app for a group), and its
# context settings (or the name of the module's constant holding them). A module is imported
# only when its command runs (or `kato --help` lists it), so `kato data export` pays for
# kato/cli/data.py alone, never for `kato check`'s monitoring or the sandbox's modules. The
# order is the order `kato --help` lists them in.
COMMANDS: dict[str, tuple[str, str, str | dict[str, Any] | None]] = {
    "status": ("status", "status", None),
    "install": ("platform", "install", None),
    "uninstall": ("platform", "uninstall", None),
    "start": ("platform", "start", "OLD_ROLES"),
    "stop": ("platform", "stop", "OLD_ROLES"),
    "restart": ("platform", "restart", "OLD_ROLES"),
    "version": ("status", "version", None),
    "check": ("check", "check", None),
    "history": ("lock", "history", None),
    "run": ("run", "run", {"allow_interspersed_args": False}),
    "relocate": ("relocate", "relocate", None),
    "config": ("config", "app", None),
    "node": ("node", "app", None),
    "lock": ("lock", "app", None),
    "patch": ("patch", "app", None),
    "data": ("data", "app", None),
    "sandbox": ("sandbox", "app", None),
    "release": ("release", "app", None),
    "upgrade": ("upgrade", "app", None),
}


class LazyCommands(TyperGroup):
    """kato's top level: every command listed (help, completion), each built on first use."""

    def list_commands(self, ctx: Any) -> list[str]:  # typer bundles click: its Context
        return list(dict.fromkeys([*COMMANDS, *super().list_commands(ctx)]))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            self.add_command(load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)


def load(name: str) -> Any:
    """Command `name` as typer builds it, with its examples at the end of every help."""
    module_name, attribute, settings = COMMANDS[name]
    module = importlib.import_module(f"kato.cli.{module_name}")
    found = getattr(module, attribute)
    built: Any
    if isinstance(found, typer.Typer):
        _finish(found, f"{name} ")
        built = typer.main.get_group(found)  # completion options stay on the top level
    else:
        single = typer.Typer(rich_markup_mode=None, add_completion=False)
        if isinstance(settings, str):
            settings = getattr(module, settings)
        single.command(name, context_settings=settings)(found)
        _finish(single)
        built = typer.main.get_command(single)
    built.name = name
    return built


app = typer.Typer(
    cls=LazyCommands,
    name="kato",
    help="Administer a platform cluster over SSH: status, patches, data, storage, upgrades.",
    no_args_is_help=True,
    add_completion=True,  # kato --install-completion / --show-completion
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: flags render as flags, examples as written
)


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


def main() -> None:
    streams.guard()  # stdout or stderr going away stops the command as Ctrl-C does (exit 141)
    try:
        app()
    except KeyboardInterrupt:  # outside a command's own handling (e.g. while parsing)
        _interrupted()
    except SystemExit as exc:
        if exc.code == ExitCode.INTERRUPTED:
            _interrupted()
        if streams.lost() and not exc.code:  # finished (SIGINT ignored), its output dropped
            raise SystemExit(streams.LOST) from None
        raise
    finally:
        # The interpreter's exit would walk every object kato and its libraries made (two
        # full collections, about 0.05 s of CPU on every command). The command is over:
        # freezing them skips those walks, while every exit step that can lose something
        # still runs as before (threads joined, atexit handlers, logging flushed, stdout and
        # stderr flushed, modules' finalizers). tests/cli/test_exit.py checks that.
        gc.freeze()


def _interrupted() -> None:
    """Exit 130 now (141 when it was stdout or stderr going away that interrupted it): the
    command has undone what it could on its way out; threads still waiting on a node (up to
    its timeouts) must not keep kato running."""
    with contextlib.suppress(OSError, ValueError):  # a closed pipe
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(streams.LOST if streams.lost() else int(ExitCode.INTERRUPTED))
