"""Ctrl-C on real nodes: SIGINT to a running `kato patch install` while a node is mid-change
(stopped there by a pause point, kato/pause.py, not by a sleep window) finishes that node,
undoes it and puts back the nodes only applied, then exits 130 with the cluster as before, the
lock released and the journal saying `interrupted`. An export whose stderr reader goes away
mid-export stops the same way (kato/cli/streams.py) and exits 141.

Uses the session's sandbox and leaves it as it found it (no patch applied, routers healthy).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kato.cli.streams import LOST
from kato.engine.parallel import INTERRUPTED
from tests.integration.conftest import KATO, Cluster
from tests.integration.test_data import shell
from tests.integration.test_data_faults import export_in_background, wait_for_partial
from tests.integration.test_patch import files, on, revert_everything

pytestmark = pytest.mark.integration
PATCH = "router-nosniff"
ROUTERS = ("node2", "node3")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout:g}s"
        time.sleep(0.05)


class Running:
    """kato in the background, its stderr read as it comes (to see the Ctrl-C warning)."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            (*KATO, *args),
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C as at a terminal even when the suite runs in the background of a
            # non-interactive shell, which starts it with SIGINT ignored (kato, rightly, then
            # keeps ignoring it, as under nohup)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.err: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.err.append(line)

    def signal_taken(self) -> bool:
        """SIGINT no longer pending: delivered, and Python's handler flagged. The main thread
        waits on a lock that the signal interrupts, so the engine's Ctrl-C handler runs at
        once; the node in flight needs 50 ms (its pause poll) and a health check after `.go`."""
        status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        pending = [
            int(line.split()[1], 16) for line in status if line.startswith(("SigPnd", "ShdPnd"))
        ]
        return not any(mask & (1 << (signal.SIGINT - 1)) for mask in pending)

    def stop(self) -> None:
        """Whatever happened, let kato run to its end (so it leaves the cluster consistent)."""
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=300)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def finish(self, timeout: float = 300) -> tuple[int, str, str]:
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code, out, "".join(self.err)


def healthy(cluster: Cluster, node: str) -> bool:
    done = cluster.ssh(node, "curl -fsS -o /dev/null -m 2 http://127.0.0.1/healthz")
    return done.returncode == 0


def test_ctrl_c_mid_patch_install_undoes_exits_130_and_releases_the_lock(
    cluster: Cluster, tmp_path: Path
) -> None:
    revert_everything(cluster)
    before = files(cluster)
    path = str(cluster.home / "cluster.yaml")
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {
        "KATO_PAUSE_DIR": str(pause),
        "KATO_PAUSE_AT": "*-restart-router",  # after the first router restarted on the patch
        "KATO_PAUSE_TIMEOUT": "120",
    }
    kato = Running(env, "--cluster", path, "patch", "install", PATCH)
    try:
        wait_for(lambda: any(pause.glob("*.reached")) or kato.process.poll() is not None, "pause")
        reached = sorted(pause.glob("*.reached"))
        assert reached, f"kato ended before any router restarted: {kato.finish()}"
        node = reached[0].name.split("-", 1)[0]
        assert node in ROUTERS
        # the patch is live on that node (restarted) and laid on the other, not yet restarted
        assert all(
            cluster.host(n).file(f"/var/lib/kato/patches/{PATCH}.json").exists for n in ROUTERS
        )
        kato.process.send_signal(signal.SIGINT)
        wait_for(kato.signal_taken, "SIGINT delivered")
        (pause / reached[0].name.replace(".reached", ".go")).touch()
        code, out, err = kato.finish()
    finally:
        (pause / "off").touch()
        for point in pause.glob("*.reached"):
            point.with_suffix(".go").touch()
        kato.stop()
    assert code == 130, f"{out}\n{err}"
    assert f"warning: {INTERRUPTED}" in err  # said at once: patch install shows no progress
    report = out + err
    assert any(node in line and "undone (interrupted)" in line for line in report.splitlines())
    # the cluster as before: every file of the releases and no patch record, routers healthy
    assert files(cluster) == before
    for router in ROUTERS:
        assert cluster.host(router).service("kato-router").is_running
        wait_for(functools.partial(healthy, cluster, router), f"{router} healthy")
    lock_free_and_last_end(cluster, "interrupted")


def lock_free_and_last_end(cluster: Cluster, result: str) -> None:
    """The lock is released and the journal's last line is the operation's end, `result`."""
    state = json.loads(on(cluster, "lock", "status", "--json", check=True).stdout)
    assert state["record"] is None, state
    history = json.loads(on(cluster, "history", "--json", "--limit", "1", check=True).stdout)
    assert history[-1]["event"] == "end" and history[-1]["result"] == result, history


BIG = "/var/lib/kato/data/droplets/lost-output.bin"


def test_an_export_whose_stderr_reader_goes_away_stops_as_ctrl_c_does(
    cluster: Cluster, tmp_path: Path
) -> None:
    shell(cluster, "node1", f"head -c 400M /dev/urandom > {BIG}")
    proc = export_in_background(cluster, tmp_path)
    try:
        wait_for_partial(tmp_path, 50 * 2**20, proc)
        assert proc.stderr is not None
        proc.stderr.close()  # the reader goes away mid-export; kato's next progress line hits it
        code = proc.wait(timeout=120)  # the old code hung or died with the lock held
    finally:
        if proc.poll() is None:
            proc.kill()
        shell(cluster, "node1", f"rm -f {BIG}")
    assert code == LOST, code
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no archive, not even a partial
    lock_free_and_last_end(cluster, "interrupted")


def test_an_export_to_stdout_whose_reader_goes_away_stops_as_ctrl_c_does(cluster: Cluster) -> None:
    """`kato data export -`: the archive itself is stdout; its reader leaving mid-archive
    stops the export the Ctrl-C way (141, lock released, `interrupted`), not a silent exit 1."""
    shell(cluster, "node1", f"head -c 64M /dev/urandom > {BIG}")
    argv = (*KATO, "--cluster", str(cluster.home / "cluster.yaml"), "data", "export", "-",
            "--role", "filesystem", "--compress", "none")  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert len(proc.stdout.read(1 << 16)) == 1 << 16  # the archive has begun to come
        proc.stdout.close()  # its reader goes away
        code = proc.wait(timeout=120)
        said = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        shell(cluster, "node1", f"rm -f {BIG}")
    assert code == LOST, said
    assert "stdout went away" in said, said
    lock_free_and_last_end(cluster, "interrupted")
