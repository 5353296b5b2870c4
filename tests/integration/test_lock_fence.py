"""Breaking a live holder's lock fences it: it stops before its next command on a node, no
other operation runs beside it meanwhile, the break is journaled with who broke it, and the
next operation says whose lock it took over and that operation's last step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import KATO, Cluster, kato
from tests.integration.test_core import _lock_holder, _wait_for_lock

pytestmark = pytest.mark.integration
MARK = "/root/kato-fence-mark"
BEGAN = "/root/kato-fence-began"
NODES = ("node1", "node2", "node3")


def on(path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return kato("--cluster", str(path), *args, check=False, env=env)


def marked(cluster: Cluster) -> list[str]:
    return [n for n in NODES if cluster.host(n).file(MARK).exists]


def rolling(path: Path, seconds: int, **env: str) -> subprocess.Popen[str]:
    """A rolling run over the three nodes, one at a time, each leaving a mark when done."""
    return subprocess.Popen(
        (*KATO, "--cluster", str(path), "run", "--serial", "1", "--", "sh", "-c",
         f"sleep {seconds}; touch {MARK}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
    )  # fmt: skip


def marking(cluster: Cluster, seconds: int, **env: str) -> subprocess.Popen[str]:
    """A rolling run over the three nodes (marks cleared first), each node's command leaving
    BEGAN when it starts and MARK when it is done, `seconds` later."""
    for node in NODES:
        cluster.ssh(node, f"rm -f {MARK} {BEGAN}")
    return subprocess.Popen(
        (*KATO, "--cluster", str(cluster.home / "cluster.yaml"), "run", "--serial", "1", "--",
         "sh", "-c", f"touch {BEGAN}; sleep {seconds}; touch {MARK}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
    )  # fmt: skip


def journal_of(path: Path, operation: str) -> list[dict[str, object]]:
    entries = json.loads(on(path, "history", "--limit", "200", "--json").stdout)
    return [e for e in entries if e["operation"] == operation]


def test_breaking_a_live_lock_fences_its_holder(cluster: Cluster) -> None:
    path = cluster.home / "cluster.yaml"
    for node in NODES:
        cluster.ssh(node, f"rm -f {MARK}")
    holder = rolling(path, 20)  # long enough for the break and the second run, under load
    try:
        record = _wait_for_lock(path)
        time.sleep(1)  # the holder is inside its first node's command
        broken = on(path, "lock", "break", str(record["id"]))
        assert broken.returncode == 0 and "marked broken" in broken.stderr, broken.stderr
        # the holder has not seen the break yet: nobody else may run meanwhile
        beside = on(path, "run", "--node", "node3", "--", "touch", MARK)
        assert beside.returncode == 4, beside.stderr
        _, stderr = holder.communicate(timeout=120)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert holder.returncode == 1, stderr
    assert f"lock {record['id']} was broken by" in stderr, stderr
    assert marked(cluster) == ["node1"]  # it stopped before its next node
    assert on(path, "run", "--node", "node2", "--", "true").returncode == 0
    events = journal_of(path, str(record["id"]))
    kinds = [e["event"] for e in events]
    assert "lock-broken" in kinds and kinds[-1] == "end", kinds
    assert next(e for e in events if e["event"] == "lock-broken")["by"]
    assert [e["node"] for e in events if e["event"] == "step"] == ["node1"]
    assert events[-1]["result"] == "failed"
    assert _lock_holder(path) is None


def test_a_dead_holder_s_lock_is_taken_over_naming_its_last_step(cluster: Cluster) -> None:
    path = cluster.home / "cluster.yaml"
    holder = rolling(path, 3, KATO_LOCK_TTL="4")
    record = _wait_for_lock(path)
    deadline = time.monotonic() + 60
    while not [e for e in journal_of(path, str(record["id"])) if e["event"] == "step"]:
        assert time.monotonic() < deadline, "the holder never finished a step"
        time.sleep(0.5)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    for node in NODES:
        cluster.ssh(node, "pkill -f 'sleep 3' || true")
    done = subprocess.run(
        (*KATO, "--cluster", str(path), "run", "--node", "node2", "--lock-wait", "30s", "--",
         "true"), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"took over the lock of operation {record['id']}" in done.stderr, done.stderr
    # on a loaded machine the holder may have finished node2 too before it was killed
    last = [e for e in journal_of(path, str(record["id"])) if e["event"] == "step"][-1]
    assert f"its heartbeat had expired; its last journaled step: {last['node']}: run" in (
        done.stderr
    ), done.stderr


def test_a_holder_killed_mid_rollout_leaves_a_journal_that_shows_where_it_stopped(
    cluster: Cluster,
) -> None:
    """Steps go down the journal's open stream, not one command each: a kato killed -9 while
    node2's command runs has node1's step on disk (written before node2 began), no `end`, and
    the next operation's begin (written by the lock's own call) names the lock it took over."""
    path = cluster.home / "cluster.yaml"
    began = BEGAN
    holder = marking(cluster, 30, KATO_LOCK_TTL="4")
    try:
        record = _wait_for_lock(path)
        deadline = time.monotonic() + 120
        for node in ("node1", "node2"):
            while not cluster.host(node).file(began).exists:
                assert holder.poll() is None and time.monotonic() < deadline, f"{node} idle"
                time.sleep(0.2)
            if node == "node1":
                cluster.ssh(node, "pkill -f 'sleep 30' || true")  # node1's command ends now
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        for node in NODES:
            cluster.ssh(node, "pkill -f 'sleep 30' || true")
    events = journal_of(path, str(record["id"]))
    assert [e["event"] for e in events] == ["begin", "step"], events
    assert events[1]["node"] == "node1" and events[1]["step"] == "run", events
    done = on(path, "run", "--node", "node3", "--lock-wait", "30s", "--", "true")
    assert done.returncode == 0, done.stderr
    entries = json.loads(on(path, "history", "--limit", "20", "--json").stdout)
    begins = [e for e in entries if e["event"] == "begin"]
    assert begins[-1]["took_over_lock"] == record["id"], begins[-1]
    assert _lock_holder(path) is None


def test_the_core_node_program_killed_mid_operation_loses_no_line_and_no_lock(
    cluster: Cluster,
) -> None:
    """The operation's one program on the core node (lock, journal stream, release) killed -9
    while node1's command runs: kato falls back to its separate calls, so every step and the
    end are journaled, the lock stays its own until the end, then it is released."""
    path = cluster.home / "cluster.yaml"
    began = BEGAN
    holder = marking(cluster, 3)
    try:
        record = _wait_for_lock(path)
        deadline = time.monotonic() + 60
        while not cluster.host("node1").file(began).exists:
            assert holder.poll() is None and time.monotonic() < deadline, "node1 idle"
            time.sleep(0.2)
        killed = cluster.ssh("node1", "pkill -9 -f '/run/kato/lock link '")
        assert killed.returncode == 0, "the operation's program was not running on the core node"
        assert (_lock_holder(path) or {}).get("id") == record["id"]  # EOF released nothing
        _, stderr = holder.communicate(timeout=120)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert holder.returncode == 0, stderr
    assert marked(cluster) == list(NODES)
    events = journal_of(path, str(record["id"]))
    assert events[0]["event"] == "begin" and events[-1]["event"] == "end", events
    # a line the program was handed but never confirmed is sent again: it may appear twice
    steps = [e["node"] for e in events if e["event"] == "step"]
    assert list(dict.fromkeys(steps)) == list(NODES), events
    assert events[-1]["result"] == "ok"
    assert _lock_holder(path) is None
