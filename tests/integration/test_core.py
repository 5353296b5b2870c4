"""The core on real nodes: host keys, unreachable nodes, the lock, the journal, `kato run`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import KATO, Cluster, cluster_copy, kato

pytestmark = pytest.mark.integration
SENTINEL = "/root/kato-sentinel"


def run_on(
    cluster_file: Path, *args: str, check: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return kato("--cluster", str(cluster_file), *args, check=check, env=env)


def sentinel_absent(cluster: Cluster) -> bool:
    return all(not cluster.host(n).file(SENTINEL).exists for n in ("node1", "node2", "node3"))


def host_key_line(cluster: Cluster, node: str) -> str:
    key = cluster.host(node).file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()
    return f"{cluster.address(node)} {key[0]} {key[1]}\n"


def fingerprint_of(cluster: Cluster, node: str) -> str:
    pub = str(cluster.host(node).file("/etc/ssh/ssh_host_ed25519_key.pub").content_string)
    done = subprocess.run(("ssh-keygen", "-lf", "-"), input=pub, capture_output=True, text=True)
    return done.stdout.split()[1]


def test_an_unknown_host_key_is_refused_before_any_command(
    cluster: Cluster, tmp_path: Path
) -> None:
    other = host_key_line(cluster, "node2") + host_key_line(cluster, "node3")
    path = cluster_copy(cluster, tmp_path, known_hosts=other)
    done = run_on(path, "run", "--node", "node1", "--", "touch", SENTINEL)
    assert done.returncode == 5, done.stderr
    assert "node1: host key refused" in done.stderr
    assert fingerprint_of(cluster, "node1") in done.stderr
    assert "kato node trust --node node1" in done.stderr
    assert sentinel_absent(cluster)


def test_a_changed_host_key_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    wrong = host_key_line(cluster, "node2").replace(
        cluster.address("node2"), cluster.address("node1")
    )
    path = cluster_copy(cluster, tmp_path, known_hosts=wrong)
    done = run_on(path, "run", "--node", "node1", "--", "touch", SENTINEL)
    assert done.returncode == 5, done.stderr
    assert "differs from the one in" in done.stderr
    assert fingerprint_of(cluster, "node1") in done.stderr
    assert sentinel_absent(cluster)


def test_a_world_writable_known_hosts_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    path = cluster_copy(cluster, tmp_path, known_hosts=host_key_line(cluster, "node1"))
    (tmp_path / "known_hosts").chmod(0o666)
    done = run_on(path, "run", "--node", "node1", "--", "touch", SENTINEL)
    assert done.returncode == 5, done.stderr
    assert "writable by other users" in done.stderr
    assert sentinel_absent(cluster)


def test_node_trust_records_a_key_only_when_the_fingerprint_matches(
    cluster: Cluster, tmp_path: Path
) -> None:
    path = cluster_copy(cluster, tmp_path, known_hosts="")
    wrong = run_on(path, "node", "trust", "-n", "node2", "--fingerprint", "SHA256:" + "A" * 43)
    assert wrong.returncode == 5, wrong.stderr
    assert (tmp_path / "known_hosts").read_text() == ""
    unconfirmed = run_on(path, "node", "trust", "-n", "node2")  # no TTY: nobody can confirm
    assert unconfirmed.returncode == 5
    assert fingerprint_of(cluster, "node2") in unconfirmed.stderr
    right = run_on(
        path,
        "node",
        "trust",
        "--node",
        "node2",
        "--fingerprint",
        fingerprint_of(cluster, "node2"),
        check=True,
    )
    assert "recorded" in right.stderr
    assert (tmp_path / "known_hosts").read_text() == host_key_line(cluster, "node2")
    # the lock lives on the core node, whose key is still unknown: refused there first
    assert run_on(path, "run", "--node", "node2", "--", "true").returncode == 5
    run_on(
        path,
        "node",
        "trust",
        "--node",
        "node1",
        "--fingerprint",
        fingerprint_of(cluster, "node1"),
        check=True,
    )
    assert run_on(path, "run", "--node", "node2", "--", "true").returncode == 0


def test_a_crashed_node_is_named_and_the_others_still_run(cluster: Cluster) -> None:
    kato("sandbox", "crash", "node3", "--name", cluster.name)
    try:
        done = run_on(cluster.home / "cluster.yaml", "run", "--", "hostname")
    finally:
        kato("sandbox", "start", "node3", "--name", cluster.name)
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split()[:2] == ["node3", "connect"] for line in lines), done.stdout
    assert any(line.split()[:3] == ["node1", "0", "node1"] for line in lines), done.stdout


def test_a_frozen_node_fails_within_the_timeout_naming_node_and_phase(
    cluster: Cluster, tmp_path: Path
) -> None:
    path = cluster_copy(cluster, tmp_path, connect_timeout=2)
    kato("sandbox", "freeze", "node2", "--name", cluster.name)
    try:
        started = time.monotonic()
        done = run_on(path, "run", "--", "true")
        elapsed = time.monotonic() - started
    finally:
        kato("sandbox", "thaw", "node2", "--name", cluster.name)
    assert done.returncode == 3, done.stderr
    assert any(line.split()[:2] == ["node2", "banner"] for line in done.stdout.splitlines())
    assert elapsed < 10, f"took {elapsed:.1f}s"


def test_shell_metacharacters_stay_one_argument(cluster: Cluster) -> None:
    path = cluster.home / "cluster.yaml"
    name = "/root/a$(id>pwned)`id>pwned2`b;c d"
    run_on(path, "run", "--node", "node1", "--", "touch", name, check=True)
    host = cluster.host("node1")
    assert host.file(name).exists
    assert not host.file("/root/pwned").exists
    assert not host.file("/root/pwned2").exists
    host.run("rm -f -- %s", name)


def _lock_holder(path: Path) -> dict[str, object] | None:
    done = run_on(path, "lock", "status", "--json", check=True)
    record: dict[str, object] | None = json.loads(done.stdout)["record"]
    return record


def _wait_for_lock(path: Path, timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = _lock_holder(path)
        if holder:
            return holder
        time.sleep(0.2)
    raise AssertionError("the lock was never taken")


def test_a_second_operation_exits_4_naming_the_holder_or_waits(cluster: Cluster) -> None:
    path = cluster.home / "cluster.yaml"
    # the first run holds the lock long enough for the second to find it on a loaded machine
    first = subprocess.Popen(
        (*KATO, "--cluster", str(path), "run", "--node", "node1", "--", "sleep", "15"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        holder = _wait_for_lock(path)
        second = run_on(path, "run", "--", "true")
        assert second.returncode == 4, second.stderr
        assert f"lock id {holder['id']}" in second.stderr
        assert "run --node node1 -- sleep 15" in second.stderr
        waited = run_on(path, "run", "--lock-wait", "60s", "--", "true")
        assert waited.returncode == 0, waited.stderr
    finally:
        first.wait(timeout=60)
    assert first.returncode == 0
    assert _lock_holder(path) is None


def test_a_killed_holders_lock_is_taken_over_after_its_ttl_and_never_earlier(
    cluster: Cluster,
) -> None:
    path = cluster.home / "cluster.yaml"
    ttl = 6
    holder = subprocess.Popen(
        (*KATO, "--cluster", str(path), "run", "--node", "node1", "--", "sleep", "120"),
        env={**os.environ, "KATO_LOCK_TTL": str(ttl)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    record = _wait_for_lock(path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    killed_at = time.monotonic()
    # The holder's last heartbeat came at most ttl/4 before the kill, so the lock may expire from
    # then on; a loaded machine can make a run that started earlier reach the lock after that.
    earliest = ttl * 3 / 4
    refused = 0
    while time.monotonic() - killed_at < ttl - 2:
        done = run_on(path, "run", "--node", "node2", "--", "true")
        if done.returncode == 0:
            assert time.monotonic() - killed_at >= earliest, (
                "the lock was taken over before its TTL"
            )
            break
        assert done.returncode == 4, done.stderr
        refused += 1
    assert refused >= 1
    waited = run_on(path, "run", "--lock-wait", "30s", "--node", "node2", "--", "true")
    assert waited.returncode == 0, waited.stderr
    assert time.monotonic() - killed_at >= earliest
    history = json.loads(run_on(path, "history", "--json", "--limit", "10", check=True).stdout)
    assert any(e.get("took_over_lock") == record["id"] for e in history)
    cluster.ssh("node1", "pkill -f 'sleep 120' || true")


def test_the_journal_records_begin_steps_and_end(cluster: Cluster) -> None:
    path = cluster.home / "cluster.yaml"
    run_on(path, "run", "--role", "router", "--", "echo", "--password=hunter2", check=True)
    entries = json.loads(run_on(path, "history", "--json", "--limit", "4", check=True).stdout)
    events = [(e["event"], e.get("node")) for e in entries]
    assert events[-4:] == [
        ("begin", None),
        ("step", "node2"),
        ("step", "node3"),
        ("end", None),
    ] or sorted(events[-3:-1]) == [("step", "node2"), ("step", "node3")]
    assert entries[-1]["result"] == "ok"
    assert "hunter2" not in json.dumps(entries)
    assert "--password=***" in entries[-1 - 3]["command"]


def test_a_rolling_reboot_never_has_two_nodes_down(cluster: Cluster) -> None:
    addresses = [cluster.address(n) for n in ("node1", "node2", "node3")]
    boot_ids = {n: cluster.boot_id(n) for n in ("node1", "node2", "node3")}
    worst, stop = [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            down = 0
            for address in addresses:
                try:
                    with socket.create_connection((address, 22), timeout=0.5) as conn:
                        conn.settimeout(0.5)
                        if not conn.recv(8).startswith(b"SSH-"):
                            down += 1
                except OSError:
                    down += 1
            worst[0] = max(worst[0], down)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        done = run_on(
            cluster.home / "cluster.yaml",
            "run",
            "--serial",
            "1",
            "--wait-healthy",
            "--",
            "systemctl",
            "reboot",
        )
    finally:
        stop.set()
        watcher.join()
    assert done.returncode == 0, done.stderr
    assert all(cluster.boot_id(n) != boot_ids[n] for n in boot_ids), "a node did not reboot"
    assert worst[0] <= 1, f"{worst[0]} nodes were down at once"


def test_version_reports_each_nodes_platform(cluster: Cluster) -> None:
    done = run_on(cluster.home / "cluster.yaml", "version", "--json", check=True)
    document = json.loads(done.stdout)
    assert document["nodes"] == {"node1": "1.0.0", "node2": "1.0.0", "node3": "1.0.0"}


def test_lock_break_removes_only_the_named_lock(cluster: Cluster) -> None:
    path = cluster.home / "cluster.yaml"
    holder = subprocess.Popen(
        (*KATO, "--cluster", str(path), "run", "--node", "node1", "--", "sleep", "120"),
        env={**os.environ, "KATO_LOCK_TTL": "300"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    record = _wait_for_lock(path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    try:
        wrong = run_on(path, "lock", "break", "notthisone")
        assert wrong.returncode == 2 and _lock_holder(path) is not None
        assert run_on(path, "run", "--node", "node2", "--", "true").returncode == 4
        run_on(path, "lock", "break", str(record["id"]), check=True)
        assert _lock_holder(path) is None
        assert run_on(path, "run", "--node", "node2", "--", "true").returncode == 0
    finally:
        cluster.ssh("node1", "pkill -f 'sleep 120' || true")
