"""One consistent command line: every command's help ends with examples of real commands,
flags render as flags, --json and --dry-run where they belong, Ctrl-C exits 130."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from kato.cli import common
from kato.cli.app import app
from kato.cli.examples import EXAMPLES

runner = CliRunner()


def commands() -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(command: Any, path: list[str]) -> None:
        if hasattr(command, "list_commands"):  # a group: through its lookup (kato's loads lazily)
            context = typer.Context(command)
            for name in command.list_commands(context):
                walk(command.get_command(context, name), [*path, name])
        else:
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), [])
    return found


ALL = sorted(commands())
# The sandbox's commands work on its machines (containers), not on the cluster file's nodes.
CLUSTER_COMMANDS = [p for p in ALL if not p.startswith("sandbox ")]


def options_of(path: str) -> set[str]:
    return {o for p in commands()[path].params for o in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("path", ALL)
def test_every_help_ends_with_two_or_three_examples_of_itself(path: str) -> None:
    done = runner.invoke(app, [*path.split(), "--help"])
    assert done.exit_code == 0, done.output
    head, _, tail = done.output.rpartition("Examples:\n")
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    assert head and 2 <= len(lines) <= 3, done.output
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "kato"
        words = [w for w in argv[1:] if not w.startswith("-") and "/" not in w]
        if argv[1] == "--cluster":
            words = [w for w in argv[3:] if not w.startswith("-")]
        assert " ".join(words).startswith(path), f"{path}: example {line!r}"
        known = options_of(path) | {"--cluster"}
        own = argv[: argv.index("--")] if "--" in argv else argv  # not the remote command's
        assert {w.split("=")[0] for w in own if w.startswith("--")} <= known, line
    assert "<bool>" not in done.output  # flags render as flags


def test_examples_name_only_commands_that_exist() -> None:
    assert set(EXAMPLES) == set(ALL)


# Commands without a JSON document, and why. Every other command prints one with --json.
NO_JSON = {
    "check": "a Nagios/Icinga plugin: its one status line and exit code are the interface",
    **{f"sandbox {verb}": "a sandbox verb prints one progress line on stderr, no result"
       for verb in ("down", "disk", "crash", "start", "stop", "freeze", "thaw", "partition",
                    "heal", "reboot")},
}  # fmt: skip
# Commands that change nothing (no --dry-run needed).
READ_ONLY = {"status", "version", "check", "history", "config show", "config validate",
             "node list", "node show", "node check", "lock status", "patch status",
             "data verify", "data backups", "data schedule list", "release list",
             "release show", "upgrade plan", "upgrade status", "upgrade tasks"}  # fmt: skip


def test_the_exception_lists_name_real_commands() -> None:
    assert set(NO_JSON) | READ_ONLY <= set(ALL)


@pytest.mark.parametrize("path", ALL)
def test_every_printing_command_has_json(path: str) -> None:
    assert ("--json" in options_of(path)) != (path in NO_JSON), path


@pytest.mark.parametrize("path", CLUSTER_COMMANDS)  # the sandbox's verbs change test machines
def test_every_changing_command_has_dry_run(path: str) -> None:
    assert ("--dry-run" in options_of(path)) != (path in READ_ONLY), path


def test_lock_break_has_yes_and_completion_is_on() -> None:
    assert {"--yes", "-y"} <= options_of("lock break")
    assert "--install-completion" in runner.invoke(app, ["--help"]).output


def test_config_validate_json(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("name: c\ncore: a\nnodes:\n- {name: a, address: 10.0.0.1, roles: [router]}\n")
    done = runner.invoke(app, ["--cluster", str(path), "config", "validate", "--json"])
    assert done.exit_code == 0 and '"valid": true' in done.stdout


def test_ctrl_c_exits_130(tmp_path: Path) -> None:
    """SIGINT while kato waits on a node that never answers (a listening socket, no banner)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text("")
    known.chmod(0o600)
    path = tmp_path / "cluster.yaml"
    path.write_text(
        f"name: c\ncore: a\nssh: {{known_hosts: {known}, connect_timeout: 60}}\n"
        f"nodes:\n- {{name: a, address: 127.0.0.1, port: {port}, roles: [router]}}\n"
    )
    proc = subprocess.Popen(
        (sys.executable, "-m", "kato", "--cluster", str(path), "status"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "KATO_ROLES": str(Path(__file__).parents[2] / "roles")},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:  # wait until kato is connected and waiting for the banner
        assert time.monotonic() < deadline, "kato never connected"
        try:
            listener.settimeout(0.2)
            conn, _ = listener.accept()
            break
        except TimeoutError:
            continue
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    conn.close()
    listener.close()
    assert proc.returncode == 130, err
    assert "interrupted" in err


# -- roles and nodes are chosen one way; --parallel wherever nodes are walked ---------------

SELECTING = {"--node", "--nodes", "--role", "--roles", "--only", "--exclude", "-n", "-r", "-x"}
SELECTING_NAMES = {"node", "nodes", "role", "roles", "only", "exclude", "old_only"}
# Crontab lines and `data import ssh://` (kato/data/source.py) of older katos say --only: a
# hidden alias with the same parse (common.OLD_ONLY).
OLD_NAMES = {("data schedule run", "old_only"), ("data export", "old_only")}
# Commands that touch the cluster's nodes without choosing them still take --parallel.
WALKS_EVERY_NODE = ("version", "patch status", "release list", "release show", "release prune",
                    "upgrade plan", "upgrade stage", "upgrade in-place", "upgrade rollback",
                    "upgrade status", "upgrade resume", "upgrade prep", "upgrade takeover",
                    "data schedule run")  # fmt: skip


# A one-off task runs on one node: it walks none.
ONE_NODE = ("upgrade task",)


def declared(option: Any, kind: Any = list[str]) -> Any:
    """The click parameter typer makes of a shared declaration in kato/cli/common.py.

    `kind` is the annotation the commands give it: typer 0.28 puts an option's min/max into
    the click type it makes of that annotation (an IntRange of an int).
    """
    holder = typer.Typer()

    def probe(value: Any = option) -> None:
        """A throwaway command holding one declaration."""

    probe.__annotations__["value"] = kind
    holder.command()(probe)
    return typer.main.get_command(holder).params[0]


def shape(param: Any) -> tuple[Any, ...]:
    """What a user sees of an option: names, help, range and whether it completes.

    The range is the option's click type's (an IntRange for min/max), as typer 0.28 builds it.
    """
    low, high = getattr(param.type, "min", None), getattr(param.type, "max", None)
    return (tuple(param.opts), tuple(param.secondary_opts), param.help, low, high,
            param._custom_shell_complete is not None)  # fmt: skip


SHARED = {shape(declared(o)) for o in (common.NODES, common.ROLES, common.EXCLUDE_ROLES)}


def selecting(path: str) -> list[Any]:
    return [
        p
        for p in commands()[path].params
        if SELECTING & {*p.opts, *p.secondary_opts} or p.name in SELECTING_NAMES
    ]


@pytest.mark.parametrize("path", CLUSTER_COMMANDS)
def test_nodes_and_roles_are_chosen_only_by_the_shared_options(path: str) -> None:
    for param in selecting(path):
        if (path, param.name) in OLD_NAMES:
            assert param.hidden and param.opts == ["--only"]
            continue
        assert param.param_type_name == "option", f"{path}: {param.name} is positional"
        assert shape(param) in SHARED, f"{path}: {param.opts} is not common.NODES/ROLES/EXCLUDE"
        assert param.multiple, f"{path}: {param.opts} takes one value"


@pytest.mark.parametrize("path", CLUSTER_COMMANDS)
def test_every_command_that_walks_nodes_takes_the_same_parallel(path: str) -> None:
    chooses_nodes = any("--node" in p.opts for p in selecting(path))
    if path in ONE_NODE or not (chooses_nodes or path in WALKS_EVERY_NODE):
        return
    (parallel,) = [p for p in commands()[path].params if "--parallel" in p.opts]
    assert shape(parallel) == shape(declared(common.PARALLEL, int)), path


def test_walking_list_names_real_commands() -> None:
    assert set(WALKS_EVERY_NODE) <= set(ALL)


def _unreachable_cluster(tmp_path: Path) -> Path:
    """Nodes at an address nothing answers on: a command that got past choosing would fail
    with exit 5 (unreachable), not 2."""
    path = tmp_path / "cluster.yaml"
    known = tmp_path / "known_hosts"
    known.write_text("")
    path.write_text(
        f"name: c\ncore: node1\nssh: {{known_hosts: {known}, connect_timeout: 1}}\nnodes:\n"
        "- {name: node1, address: 127.0.0.1, port: 9, roles: [router, postgresql, redis]}\n"
        "- {name: node2, address: 127.0.0.1, port: 9, roles: [controller, filesystem]}\n"
        "- {name: node3, address: 127.0.0.1, port: 9, roles: [dea]}\n"
    )
    return path


def _with(path: str, *extra: str) -> list[str]:
    """The command's first example with extra options right after the command's name."""
    argv = shlex.split(EXAMPLES[path][0])[1:]
    if argv[0] == "--cluster":
        argv = argv[2:]
    words = len(path.split())
    return [*argv[:words], *extra, *argv[words:]]


@pytest.mark.parametrize("path", [p for p in CLUSTER_COMMANDS if selecting(p)])
def test_an_unknown_node_or_role_is_refused_naming_the_known_ones(
    path: str, tmp_path: Path
) -> None:
    cluster = _unreachable_cluster(tmp_path)
    options = {o for p in selecting(path) for o in p.opts}
    cases = [("--node", "nosuch", "its nodes: node1, node2, node3")] if "--node" in options else []
    if "--role" in options:
        roles = "controller, dea, filesystem, postgresql, redis, router"
        cases.append(("--role", "nosuch", f"its roles: {roles}"))
    for option, value, known in cases:
        done = runner.invoke(app, ["--cluster", str(cluster), *_with(path, option, value)])
        assert done.exit_code == (3 if path == "check" else 2), (option, done.output)  # Nagios
        assert "'nosuch'" in done.output, done.output
        assert path == "check" or known in done.output, done.output  # a plugin prints one line


@pytest.mark.parametrize("verb", ["start", "stop", "restart"])
def test_a_role_given_the_old_way_gets_the_same_parse_as_role(verb: str, tmp_path: Path) -> None:
    cluster = _unreachable_cluster(tmp_path)
    done = runner.invoke(app, ["--cluster", str(cluster), verb, "nosuch"])
    assert done.exit_code == 2 and "--role: no node of cluster" in done.output, done.output
    assert "'nosuch'" in done.output and "its roles: controller" in done.output, done.output
    assert "Usage: kato " + verb + " [OPTIONS]\n" in runner.invoke(app, [verb, "--help"]).output


def test_node_and_role_names_complete_from_the_cluster_file(tmp_path: Path) -> None:
    cluster = _unreachable_cluster(tmp_path)

    def complete(*words: str) -> list[str]:
        env = {**os.environ, "_KATO_COMPLETE": "complete_bash", "KATO_CLUSTER": str(cluster),
               "COMP_WORDS": " ".join(("kato", *words)), "COMP_CWORD": str(len(words))}  # fmt: skip
        kato = str(Path(sys.executable).with_name("kato"))  # the prog name completion answers to
        done = subprocess.run((kato,), env=env, capture_output=True, text=True, timeout=60)
        return done.stdout.split()

    assert complete("status", "--node", "") == ["node1", "node2", "node3"]
    assert complete("stop", "--role", "po") == ["postgresql"]
    assert complete("data", "export", "--exclude", "r") == ["redis", "router"]
    assert complete("node", "check", "--node", "node1,node") == [
        "node1,node1", "node1,node2", "node1,node3"]  # fmt: skip


def test_a_yaml_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("name: c\ncore: a\nnodes:\n  - {name: a, address: 10.0.0.1, roles: [router]\n")
    done = runner.invoke(app, ["--cluster", str(path), "status"])
    assert done.exit_code == 2
    assert f"{path}: not valid YAML: line 5, column 1" in done.output, done.output
    assert "kato config validate" in done.output  # the next step
