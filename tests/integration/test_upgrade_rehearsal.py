"""Rehearsal on real nodes: `kato sandbox up --from-archive` makes a sandbox shaped like the
archive's cluster, on its platform version, with its data, ready for `kato upgrade plan`; a
damaged archive is refused before anything is made."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, kato, sandbox_name
from tests.integration.test_platform import on
from tests.integration.test_upgrade import register, registry

pytestmark = pytest.mark.integration
NAME = sandbox_name("reh")


def test_a_sandbox_from_an_archive_holds_its_data_and_can_plan_an_upgrade(
    cluster: Cluster, tmp_path: Path
) -> None:
    register(cluster, "rehearsed")
    on(cluster, "data", "export", str(tmp_path))
    archive = next(tmp_path.glob("*.tar.zst"))
    damaged = tmp_path / "damaged.tar.zst"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    kato("sandbox", "down", "--name", NAME)
    refused = kato("sandbox", "up", "--name", NAME, "--from-archive", str(damaged), check=False)
    assert refused.returncode == 6, refused.stderr
    assert "not found" in kato("sandbox", "status", "--name", NAME, check=False).stderr.lower() or (
        kato("sandbox", "status", "--name", NAME, check=False).returncode != 0
    )
    try:
        up = kato(
            "sandbox",
            "up",
            "--name",
            NAME,
            "--nodes",
            "2",
            "--from-archive",
            str(archive),
            "--json",
        )
        status = json.loads(up.stdout)
        core = next(n["address"] for n in status["nodes"] if n["name"] == "node1")
        with urllib.request.urlopen(f"http://{core}:8181/apps", timeout=10) as reply:
            assert json.loads(reply.read()) == registry(cluster)
        path = status["cluster_file"]
        planned = kato("--cluster", path, "upgrade", "plan", "1.2.0")
        assert "ok: every role is healthy" in planned.stdout
        again = kato("sandbox", "up", "--name", NAME, "--from-archive", str(archive), check=False)
        assert again.returncode == 2 and "a rehearsal imports into a new sandbox" in again.stderr
    finally:
        kato("sandbox", "down", "--name", NAME)
