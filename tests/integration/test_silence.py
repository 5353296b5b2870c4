"""A node that goes silent mid-stream is named within the idle timeout, not after the command
timeout; the failed run (its core node alive) releases the lock and journals its end."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import KATO, Cluster, kato
from tests.integration.test_data_faults import big_droplet, wait_for_partial  # noqa: F401

pytestmark = pytest.mark.integration


def core_elsewhere(cluster: Cluster, directory: Path) -> Path:
    """The sandbox's cluster file with node2 as the core node (the lock and journal there),
    so the node whose data is read (node1) can be frozen while the core stays alive."""
    document = yaml.safe_load((cluster.home / "cluster.yaml").read_text())
    document["core"] = "node2"
    path = directory / "cluster.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.usefixtures("big_droplet")
def test_a_node_frozen_mid_export_is_named_and_the_run_ends_cleanly(
    cluster: Cluster, tmp_path: Path
) -> None:
    config = core_elsewhere(cluster, tmp_path)
    dest = tmp_path / "archives"
    dest.mkdir()
    proc = subprocess.Popen(
        (*KATO, "--cluster", str(config), "data", "export", str(dest), "--role", "filesystem",
         "--compress", "none"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "KATO_IDLE_TIMEOUT": "5"},
    )  # fmt: skip
    wait_for_partial(dest, 50 * 2**20, proc)
    kato("sandbox", "freeze", "node1", "--name", cluster.name)
    frozen = time.monotonic()
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        kato("sandbox", "thaw", "node1", "--name", cluster.name)
    waited = time.monotonic() - frozen
    assert proc.returncode == 5, stderr
    assert "node1 sent nothing for 5 s" in stderr, stderr
    assert waited < 45, f"noticed only after {waited:.0f}s"
    assert list(dest.iterdir()) == []
    lock = json.loads(kato("--cluster", str(config), "lock", "status", "--json").stdout)
    assert lock["record"] is None, lock
    entries = json.loads(kato("--cluster", str(config), "history", "--json").stdout)
    end = entries[-1]
    assert end["event"] == "end" and end["result"] == "failed", end
    begun = [e for e in entries if e["operation"] == end["operation"] and e["event"] == "begin"]
    assert begun and "export" in " ".join(begun[0]["command"])


def test_a_quiet_but_live_command_is_not_taken_for_silence(cluster: Cluster) -> None:
    config = str(cluster.home / "cluster.yaml")
    done = kato("--cluster", config, "run", "--node", "node2", "--", "sleep", "8",
                env={"KATO_IDLE_TIMEOUT": "2"})  # fmt: skip
    assert done.returncode == 0
