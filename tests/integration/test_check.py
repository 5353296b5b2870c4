"""`kato check` as a Nagios plugin and `kato status --prometheus` against the sandbox when it
is healthy, degraded (a role stopped) and broken (a node crashed)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import KATO, Cluster, kato

pytestmark = pytest.mark.integration
METRICS = "/var/lib/node_exporter/textfile_collector/kato_data_export_katest.prom"
CALM = ("--warn", "load=100", "--crit", "load=200")  # the nodes share this busy machine's load
PERF = re.compile(r"'([^']+)'=([0-9.]+)(%|s)?;([^; ]*);([^; ]*);")


def on(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return kato("--cluster", str(cluster.home / "cluster.yaml"), *args, check=False)


def perfdata(line: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in PERF.finditer(line.partition(" | ")[2])}


@pytest.fixture(scope="module")
def backed_up(cluster: Cluster) -> Iterator[Cluster]:
    """One real scheduled export run on the core node, so the backup age is known."""
    done = cluster.ssh(
        "node1",
        f"/usr/local/bin/kato data schedule run --dest /var/tmp/katest-backups --metrics {METRICS}",
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    yield cluster
    cluster.ssh("node1", f"rm -rf /var/tmp/katest-backups {METRICS}")


def test_a_healthy_cluster_is_ok_with_perfdata(backed_up: Cluster, tmp_path: Path) -> None:
    done = on(backed_up, "check", *CALM)
    first, *rest = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert first.startswith("KATO OK - 3 nodes, 8 roles healthy | ") and rest == []
    perf = perfdata(first)
    assert perf["nodes_up"] == 3 and 0 <= perf["backup_age"] < 600
    assert {"node1_load1", "node2_dea_containers_disk", "node1_postgresql_services_inodes"} <= set(
        perf
    )
    warned = on(backed_up, "check", "-w", "load=100,disk=0.001", "-c", "load=200,disk=100")
    assert warned.returncode == 1 and warned.stdout.startswith("KATO WARNING - node1 ")
    assert "disk" in warned.stdout.splitlines()[0]
    textfile = tmp_path / "kato.prom"
    shown = on(backed_up, "status", "--prometheus", str(textfile))
    assert shown.returncode == 0, shown.stderr
    text = textfile.read_text()
    for node in ("node1", "node2", "node3"):
        assert f'kato_node_up{{cluster="{backed_up.name}",node="{node}"}} 1\n' in text
    assert 'role="postgresql"} 1\n' in text and "# TYPE kato_datadir_used_ratio gauge" in text
    assert f'kato_lock_held{{cluster="{backed_up.name}"}} 0\n' in text
    assert list(tmp_path.iterdir()) == [textfile]  # no temporary file left


def test_a_stopped_role_is_critical(backed_up: Cluster, tmp_path: Path) -> None:
    assert on(backed_up, "stop", "--role", "dea", "--node", "node3").returncode == 0
    try:
        done = on(backed_up, "check", *CALM)
        textfile = tmp_path / "kato.prom"
        on(backed_up, "status", "--prometheus", str(textfile))
    finally:
        assert on(backed_up, "start", "--role", "dea", "--node", "node3").returncode == 0
    assert done.returncode == 2, done.stdout + done.stderr
    first, *rest = done.stdout.splitlines()
    assert first.startswith("KATO CRITICAL - node3 dea failing: not running | ")
    assert rest == ["node3 dea failing: not running"]
    assert 'node="node3",role="dea"} 0\n' in textfile.read_text()


def test_a_crashed_node_is_critical_and_down(backed_up: Cluster, tmp_path: Path) -> None:
    kato("sandbox", "crash", "node3", "--name", backed_up.name)
    try:
        done = on(backed_up, "check", *CALM)
        textfile = tmp_path / "kato.prom"
        shown = on(backed_up, "status", "--prometheus", str(textfile))
    finally:
        kato("sandbox", "start", "node3", "--name", backed_up.name)
    assert done.returncode == 2, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("KATO CRITICAL - node3 unreachable (connect: ")
    assert "'nodes_up'=2;;;0;3" in first
    assert shown.returncode == 3  # kato status's own code: some nodes did not answer
    assert f'kato_node_up{{cluster="{backed_up.name}",node="node3"}} 0\n' in textfile.read_text()
    deadline = time.monotonic() + 120
    while on(backed_up, "check", *CALM).returncode != 0:  # the node and its roles come back
        assert time.monotonic() < deadline, "the cluster did not become healthy again"
        time.sleep(2)


def test_a_lock_left_past_its_ttl_warns(backed_up: Cluster) -> None:
    path = backed_up.home / "cluster.yaml"
    holder = subprocess.Popen(
        (*KATO, "--cluster", str(path), "run", "--node", "node1", "--", "sleep", "120"),
        env={**os.environ, "KATO_LOCK_TTL": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    try:
        while "lock: held" not in on(backed_up, "status").stdout:
            assert time.monotonic() < deadline, "the lock was never taken"
            time.sleep(0.2)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    while (done := on(backed_up, "check", *CALM)).returncode == 0:  # until the TTL has passed
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert done.returncode == 1, done.stdout
    assert re.match(r"KATO WARNING - a lock was left \d+s past its TTL", done.stdout)
    lock_id = json.loads(on(backed_up, "lock", "status", "--json").stdout)["record"]["id"]
    dry = on(backed_up, "lock", "break", lock_id, "--dry-run", "--json")
    assert json.loads(dry.stdout)["broken"] is False
    assert on(backed_up, "check", *CALM).returncode == 1  # still there
    broken = on(backed_up, "lock", "break", lock_id, "--yes", "--json")
    document = json.loads(broken.stdout)
    assert (document["broken"], document["removed"]) == (True, True)  # its holder was gone
    assert document["lock"] == json.loads(dry.stdout)["lock"]
    assert on(backed_up, "check", *CALM).returncode == 0
    loaded = on(backed_up, "check", "--warn", "load=0", "--crit", "load=1000")  # any load >= 0
    assert loaded.returncode == 1 and "load" in loaded.stdout.splitlines()[0]


def test_a_bad_cluster_file_is_unknown(tmp_path: Path) -> None:
    bad = tmp_path / "cluster.yaml"
    bad.write_text("name: [\n")
    done = kato("--cluster", str(bad), "check", check=False)
    assert done.returncode == 3
    assert done.stdout.startswith("KATO UNKNOWN - ") and "not valid YAML" in done.stdout
