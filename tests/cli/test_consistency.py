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

from kato.cli.app import app
from kato.cli.examples import EXAMPLES

runner = CliRunner()


def commands() -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(command: Any, path: list[str]) -> None:
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), [])
    return found


ALL = sorted(commands())


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


PRINTING = ("config validate", "node trust", "lock break", "data schedule remove", "check")
CHANGING = ("node trust", "lock break", "data schedule run", "data schedule add",
            "data schedule remove", "install", "start", "patch install", "data import")  # fmt: skip


@pytest.mark.parametrize("path", [p for p in PRINTING if p != "check"])
def test_printing_commands_have_json(path: str) -> None:
    assert "--json" in options_of(path)


@pytest.mark.parametrize("path", CHANGING)
def test_changing_commands_have_dry_run(path: str) -> None:
    assert "--dry-run" in options_of(path)


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
