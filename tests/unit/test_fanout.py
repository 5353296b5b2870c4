"""Fan-out: every node ends succeeded or failed, with the phase; exit codes follow."""

from __future__ import annotations

import threading
import time

from kato.errors import ExitCode, HostKeyRefused, NodeUnreachable, RemoteCommandFailed
from kato.transport.fanout import fan_out


def test_partial_failure_names_node_and_phase() -> None:
    def work(node: str) -> str:
        if node == "b":
            raise NodeUnreachable("b", "connect", "refused")
        if node == "c":
            raise RemoteCommandFailed("c", ("false",), 1, "")
        if node == "d":
            raise ValueError("a bug")
        return node.upper()

    result = fan_out(["a", "b", "c", "d"], work, limit=4)
    assert result.succeeded == {"a": "A"}
    assert {n: f.phase for n, f in result.failed.items()} == {
        "b": "connect",
        "c": "command",
        "d": "internal",
    }
    assert result.exit_code == ExitCode.PARTIAL


def test_all_unreachable_is_5_and_all_failed_otherwise_is_1() -> None:
    def unreachable(node: str) -> None:
        raise HostKeyRefused(node, "unknown", "SHA256:x", hint="trust it")

    assert fan_out(["a", "b"], unreachable, 2).exit_code == ExitCode.UNREACHABLE

    def broken(node: str) -> None:
        raise RemoteCommandFailed(node, ("false",), 1, "")

    assert fan_out(["a", "b"], broken, 2).exit_code == ExitCode.FAILED
    assert fan_out([], broken, 2).exit_code == ExitCode.OK


def test_the_pool_never_runs_more_than_the_limit() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def work(node: str) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    fan_out([str(i) for i in range(12)], work, limit=3)
    assert peak[0] == 3


def test_an_inline_program_is_shown_by_its_size_not_its_text() -> None:
    from kato.errors import RemoteCommandFailed

    script = "import os\n" * 40
    failed = RemoteCommandFailed("node1", ("python3", "-c", script, "/run/kato/lock"), 1, "no\n")
    assert failed.message == "node1: no (exit 1 of `python3 -c <41-line script> /run/kato/lock`)"
