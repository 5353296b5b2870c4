"""`kato lock break` on a terminal shows the holder and asks; "no" changes nothing, `--yes`
breaks it without asking (scripts), and without a terminal nobody is asked."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import KATO, Cluster
from tests.integration.test_core import _lock_holder, _wait_for_lock

pytestmark = pytest.mark.integration


class Terminal:
    """kato on a pseudo-terminal: what it wrote so far, and typing into it."""

    def __init__(self, cluster: Cluster, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            (*KATO, "--cluster", str(cluster.home / "cluster.yaml"), *args),
            stdin=slave, stdout=slave, stderr=slave,
            env={**os.environ, "COLUMNS": "200", "TERM": "xterm"},
        )  # fmt: skip
        os.close(slave)
        self.seen = ""

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            assert time.monotonic() < deadline, f"never saw {text!r}: {self.seen!r}"
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                try:
                    self.seen += os.read(self.master, 1 << 16).decode(errors="replace")
                except OSError:  # kato exited and the terminal is gone
                    assert text in self.seen, f"kato exited before {text!r}: {self.seen!r}"

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def finish(self) -> int:
        status = self.process.wait(timeout=120)
        while True:  # what is left on the terminal, until it reports kato's side closed
            try:
                chunk = os.read(self.master, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk.decode(errors="replace")
        os.close(self.master)
        return status


@pytest.fixture
def held(cluster: Cluster) -> Iterator[dict[str, object]]:
    """The lock of a kato killed while holding it (its heartbeat still within the TTL)."""
    path = cluster.home / "cluster.yaml"
    holder = subprocess.Popen(
        (*KATO, "--cluster", str(path), "run", "--node", "node1", "--", "sleep", "121"),
        env={**os.environ, "KATO_LOCK_TTL": "300"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    record = _wait_for_lock(path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    try:
        yield record
    finally:
        if _lock_holder(path) is not None:
            subprocess.run((*KATO, "--cluster", str(path), "lock", "break", str(record["id"]),
                            "--yes"), capture_output=True, timeout=120, check=False)  # fmt: skip
        cluster.ssh("node1", "pkill -x -f 'sleep 121' || true")


def test_lock_break_asks_on_a_terminal_and_no_changes_nothing(
    cluster: Cluster, held: dict[str, object]
) -> None:
    path: Path = cluster.home / "cluster.yaml"
    asked = Terminal(cluster, "lock", "break", str(held["id"]))
    asked.wait_for("Break it?")
    assert f"lock {held['id']}:" in asked.seen and "sleep 121" in asked.seen  # the holder shown
    asked.type("n")
    assert asked.finish() == 2, asked.seen
    assert "was not broken" in asked.seen and "nothing was changed" in asked.seen
    assert (_lock_holder(path) or {}).get("id") == held["id"]
    told = Terminal(cluster, "lock", "break", str(held["id"]), "--yes")
    assert told.finish() == 0, told.seen
    assert "Break it?" not in told.seen
    assert _lock_holder(path) is None
