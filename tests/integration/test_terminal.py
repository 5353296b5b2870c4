"""Text from nodes and the journal reaches the terminal as text: escape sequences shown
visibly, rich markup never interpreted (on a terminal and in a pipe)."""

from __future__ import annotations

import os
import pty
import subprocess

import pytest

from tests.integration.conftest import KATO, Cluster, kato

pytestmark = pytest.mark.integration
# a window title, a clear screen, markup that would colour, and markup that would not parse
HOSTILE = "\x1b]0;pwned\x07\x1b[2J[red]red[/red] [/bogus] end"
SHOWN = "\\e]0;pwned\\x07\\e[2J[red]red[/red] [/bogus] end"


def on_terminal(cluster: Cluster, *args: str) -> tuple[int, str]:
    """Run kato with stdout and stderr on a pseudo-terminal, as a sysadmin would."""
    master, slave = pty.openpty()
    config = str(cluster.home / "cluster.yaml")
    process = subprocess.Popen(
        (*KATO, "--cluster", config, *args),
        stdout=slave,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "250", "TERM": "xterm"},
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # the terminal is gone: kato exited
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return process.wait(timeout=120), seen.decode(errors="replace")


def assert_harmless(text: str) -> None:
    assert "\x1b]0;" not in text and "\x1b[2J" not in text and "\x07" not in text
    assert SHOWN in text, text  # the markup is shown literally, the escapes visibly
    assert "MarkupError" not in text


def test_node_output_is_shown_not_obeyed_by_run_on_a_terminal(cluster: Cluster) -> None:
    status, text = on_terminal(cluster, "run", "--node", "node1", "--", "printf", "%s\n", HOSTILE)
    assert status == 0, text
    assert_harmless(text)


def test_node_output_is_shown_not_obeyed_by_run_in_a_pipe(cluster: Cluster) -> None:
    config = str(cluster.home / "cluster.yaml")
    done = kato("--cluster", config, "run", "--node", "node1", "--", "printf", "%s\n", HOSTILE)
    assert_harmless(done.stdout)


def test_a_failing_command_s_error_is_shown_not_obeyed(cluster: Cluster) -> None:
    status, text = on_terminal(
        cluster, "run", "--node", "node1", "--", "sh", "-c", 'printf "%s\\n" "$1" >&2; exit 3',
        "sh", HOSTILE,
    )  # fmt: skip
    assert status == 1, text  # every node failed
    assert_harmless(text)


def test_journaled_argv_is_shown_not_obeyed_by_history(cluster: Cluster) -> None:
    config = str(cluster.home / "cluster.yaml")
    kato("--cluster", config, "run", "--node", "node1", "--", "true", HOSTILE)
    status, text = on_terminal(cluster, "history", "--limit", "3")
    assert status == 0, text
    assert_harmless(text)
    piped = kato("--cluster", config, "history", "--limit", "3")
    assert_harmless(piped.stdout)
