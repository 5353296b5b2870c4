"""The command line: version, help, and errors mapped to their exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kato import __version__
from kato.cli.app import app
from kato.sandbox import model
from kato.transport import local

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"kato {__version__}"


def test_help_does_not_import_ssh_libraries() -> None:
    code = (
        "import sys; from kato.cli.app import app; "
        "print(sorted(m for m in ('paramiko', 'fabric', 'cryptography') if m in sys.modules))"
    )
    done = subprocess.run((sys.executable, "-c", code), capture_output=True, text=True)
    assert done.stdout.strip() == "[]"


def test_status_of_a_missing_sandbox_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KATO_SANDBOX_HOME", str(tmp_path))
    result = runner.invoke(app, ["sandbox", "status", "--name", "ghost"])
    assert result.exit_code == 2
    assert "there is no sandbox named 'ghost'" in result.stderr
    assert "kato sandbox up --name ghost" in result.stderr


def test_a_bad_sandbox_name_is_a_usage_error() -> None:
    result = runner.invoke(app, ["sandbox", "up", "--name", "Bad Name"])
    assert result.exit_code == 2
    assert "sandbox name 'Bad Name' is not valid" in result.stderr


def test_up_as_non_root_is_refused_with_exit_7(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = runner.invoke(app, ["sandbox", "up", "--name", "x"])
    assert result.exit_code == 7
    assert "needs root" in result.stderr


def test_missing_tool_names_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(local, "which", lambda tool: None if tool == "debootstrap" else tool)
    result = runner.invoke(app, ["sandbox", "up", "--name", "x"])
    assert result.exit_code == 7
    assert "apt-get install -y debootstrap" in result.stderr


def test_status_json_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATO_SANDBOX_HOME", str(tmp_path))
    model.save(model.plan_sandbox("shape", 2, "198.18.99.0/24", image="/img"))
    result = runner.invoke(app, ["sandbox", "status", "--name", "shape", "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"name", "subnet", "cluster_file", "ssh_config", "nodes"}
    assert [(n["name"], n["address"], n["state"]) for n in document["nodes"]] == [
        ("node1", "198.18.99.11", "stopped"),
        ("node2", "198.18.99.12", "stopped"),
    ]


def test_a_broken_cluster_file_lists_every_problem_with_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "cluster.yaml"
    broken.write_text(
        "name: prod\ncore: ghost\nssh: {parallel: 0}\n"
        "nodes:\n  - {name: a, address: '10.0.0.1;reboot', roles: [router]}\n"
        "  - {name: a, roles: [router]}\n"
    )
    result = runner.invoke(app, ["--cluster", str(broken), "config", "validate"])
    assert result.exit_code == 2
    for problem in (
        "3: ssh.parallel",
        "5: nodes[0].address",
        "6: nodes[1].name",
        "6: nodes[1].address",  # missing: the line of the node that lacks it
        "2: core: names 'ghost'",
    ):
        assert f"{broken}:{problem}" in result.stderr, problem


def test_each_problem_names_the_line_of_its_key_in_a_block_style_file(tmp_path: Path) -> None:
    """An editor's "go to line" lands on the key at fault, however deep it is."""
    broken = tmp_path / "cluster.yaml"
    broken.write_text(
        "# the cluster\n"
        "name: prod\n"
        "core: n1\n"
        "ssh:\n"
        "  user: kato\n"
        "  connect_timeout: -1\n"
        "nodes:\n"
        "  - name: n1\n"
        "    address: 10.0.0.1\n"
        "    roles: [router]\n"
        "  - name: n2\n"
        "    roles: [router]\n"
        "    colour: blue\n"
    )
    before = broken.read_bytes()
    result = runner.invoke(app, ["--cluster", str(broken), "config", "validate"])
    assert result.exit_code == 2
    assert "has 3 problem(s)" in result.stderr
    assert f"{broken}:6: ssh.connect_timeout: must be a number of seconds" in result.stderr
    assert f"{broken}:11: nodes[1].address: required" in result.stderr
    assert f"{broken}:13: nodes[1].colour: unknown key" in result.stderr
    assert "kato config validate" in result.stderr  # the next step
    assert broken.read_bytes() == before


def test_a_good_cluster_file_validates_and_shows(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "conf" / "cluster.yaml"
    result = runner.invoke(app, ["--cluster", str(example), "config", "validate"])
    assert result.exit_code == 0, result.stderr
    shown = runner.invoke(app, ["--cluster", str(example), "config", "show", "--json"])
    assert json.loads(shown.stdout)["core"]


def test_a_command_loads_its_own_cli_module_only() -> None:
    """Start-up: `kato data export` pays neither for the other commands nor for SSH.

    Nor for pydantic, which typer 0.29 imports at every parse (0.06-0.08 s a command): hence
    the typer pin in pyproject.toml.
    """
    code = (
        "import sys\nfrom kato.cli.app import app\ntry:\n    app(['data', 'export', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('kato.cli.') or m in "
        "('kato.monitor', 'kato.sandbox', 'paramiko', 'cryptography', 'pydantic')))"
    )
    done = subprocess.run((sys.executable, "-c", code), capture_output=True, text=True)
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"')))
    assert "kato.cli.data" in loaded, done.stdout
    assert not loaded & {"kato.cli.check", "kato.cli.sandbox", "kato.cli.upgrade", "kato.monitor"}
    assert not loaded & {"kato.sandbox", "paramiko", "cryptography"}
    assert "pydantic" not in loaded, "typer imported pydantic: keep typer below 0.29"


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (os.mkfifo, "is not a regular file (a device, pipe or socket)"),
        (os.mkdir, "is a directory, not an archive file"),
        (lambda p: os.symlink("/nowhere", p), "no such archive file"),
    ],
    ids=["fifo", "directory", "dangling-link"],
)
def test_verify_names_what_a_path_that_is_no_archive_file_is(
    tmp_path: Path, make: Callable[[Path], object], said: str
) -> None:
    path = tmp_path / "kx1-20261201T040000Z.tar.zst"
    make(path)
    result = runner.invoke(app, ["data", "verify", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}" in result.output and said in result.output


def test_status_names_an_expired_lock_left_on_the_core_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody holds an expired lock, but its record says whose operation died and that the
    next command takes it over: `kato status` says so rather than a bare "free"."""
    from kato import status as cluster_status
    from kato.upgrade import catalog

    path = tmp_path / "cluster.yaml"
    path.write_text("name: t\ncore: n1\nnodes:\n  - {name: n1, address: 10.0.0.1, roles: []}\n")
    gone = {"id": "ab12", "owner": "ops@core", "command": "kato data import x.tar.zst"}
    found = cluster_status.ClusterStatus(
        "t", (), (), None, None, {**gone, "heartbeat_at": "2026-12-01T03:00:00Z"}
    )
    monkeypatch.setattr(cluster_status, "status", lambda *args, **kwargs: found)
    monkeypatch.setattr(catalog, "update_for", lambda *args: (None, None))
    result = runner.invoke(app, ["--cluster", str(path), "status"])
    assert result.exit_code == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert "lock: free (the record of ops@core running `kato data import x.tar.zst`" in said
    assert "(id ab12) stopped its heartbeat at 2026-12-01T03:00:00Z" in said
    assert "next command takes it over" in said
    as_json = runner.invoke(app, ["--cluster", str(path), "status", "--json"])
    assert json.loads(as_json.stdout)["lock_expired"]["id"] == "ab12"
