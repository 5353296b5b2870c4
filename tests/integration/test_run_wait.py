"""`kato run --wait-healthy --wait-timeout D`: a node that does not come back healthy within D
stops the rolling run after D, not after the default five minutes."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import Cluster, kato

pytestmark = pytest.mark.integration


def test_wait_timeout_bounds_the_health_wait(cluster: Cluster) -> None:
    config = str(cluster.home / "cluster.yaml")
    started = time.monotonic()
    try:
        done = kato("--cluster", config, "run", "--node", "node2", "--wait-healthy",
                    "--wait-timeout", "4s", "--", "systemctl", "stop", "kato-dea.service",
                    check=False)  # fmt: skip
    finally:
        cluster.ssh("node2", "systemctl start kato-dea.service")
    assert done.returncode == 5, done.stderr  # its one node did not come back healthy
    assert "not healthy within 4s" in done.stdout + done.stderr
    assert time.monotonic() - started < 60
    bad = kato("--cluster", config, "run", "--wait-healthy", "--wait-timeout", "soon", "--",
               "true", check=False)  # fmt: skip
    assert bad.returncode == 2 and "--wait-timeout 'soon' is not a duration" in bad.stderr
