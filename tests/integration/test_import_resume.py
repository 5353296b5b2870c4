"""An import killed while a dump is loaded, run again, ends as the first run meant to: the
data imported and PostgreSQL running, as it was before; the second run says what it found."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import KATO, Cluster
from tests.integration.test_data import PSQL, on, shell

pytestmark = pytest.mark.integration
UNIT = "kato-postgresql.service"
COUNT = f'{PSQL} -d bulk -c "SELECT count(*) FROM rows"'


@pytest.fixture
def bulk_archive(cluster: Cluster, tmp_path: Path) -> Iterator[Path]:
    """An export of a PostgreSQL database big enough to take seconds to load."""
    shell(
        cluster,
        "node1",
        f"""{PSQL} -c "CREATE DATABASE bulk" && {PSQL} -d bulk -c "
        CREATE TABLE rows AS SELECT g AS id, md5(g::text) AS a, md5((g+1)::text) AS b
        FROM generate_series(1, 1500000) g; ALTER TABLE rows ADD PRIMARY KEY (id)" """,
    )
    archive = tmp_path / "bulk.tar.zst"
    on(cluster, "data", "export", str(archive), "--role", "postgresql")
    yield archive
    cluster.ssh("node1", f'{PSQL} -c "DROP DATABASE IF EXISTS bulk"')
    on(cluster, "data", "cleanup", check=False)


def active(cluster: Cluster) -> str:
    return cluster.ssh("node1", f"systemctl is-active {UNIT}").stdout.strip()


def test_an_import_killed_mid_load_then_run_again_leaves_postgresql_running(
    cluster: Cluster, bulk_archive: Path
) -> None:
    config = str(cluster.home / "cluster.yaml")
    first = subprocess.Popen(
        (*KATO, "--cluster", config, "data", "import", str(bulk_archive)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "KATO_LOCK_TTL": "6"},
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while active(cluster) == "active":  # the switch stopped it to load the dump
        assert first.poll() is None and time.monotonic() < deadline, "never stopped"
        time.sleep(0.2)
    time.sleep(1)
    assert first.poll() is None, "the import ended before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert active(cluster) != "active"  # what the interruption left
    again = on(cluster, "data", "import", str(bulk_archive), "--lock-wait", "60s", check=False)
    assert again.returncode == 0, again.stderr
    assert "left stopped by the interrupted operation" in again.stderr, again.stderr
    assert "took over the lock of operation" in again.stderr
    assert active(cluster) == "active"
    assert shell(cluster, "node1", COUNT).strip() == "1500000"
    status = json.loads(on(cluster, "status", "--json").stdout)
    assert all(r["health"] == "ok" for n in status["nodes"] for r in n["roles"])
