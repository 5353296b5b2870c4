"""Graceful upgrades on real nodes, through the sandbox's haproxy: prep + takeover with a
bounded load that must see no failure, the broken release rolled back gracefully with its
data intact, and the refusals (a major jump, no prep, --dry-run changing nothing).

Every test leaves the cluster on 1.0.0, healthy, with no unfinished upgrade.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from tests.integration.test_platform import node_state, on
from tests.integration.test_upgrade import register, registry, versions

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from bench_upgrade import Load as Load  # noqa: E402  (the benchmark's bounded load generator)

pytestmark = pytest.mark.integration


def run(cluster: Cluster, *args: str) -> object:
    return on(cluster, *args, check=False)


class Background:
    """A bounded load through haproxy on the core node, in a thread: a fixed number of
    requests at a fixed rate, to the sandbox's own address; it stops by itself."""

    def __init__(self, cluster: Cluster, count: int, rate: float) -> None:
        self.load = Load(cluster.address("node1"), count, rate)
        self.thread = threading.Thread(target=self.load.run)

    def __enter__(self) -> Load:
        self.thread.start()
        return self.load

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=600)


def both_routers_up(cluster: Cluster, within: float = 60.0) -> None:
    """Wait until haproxy's own checks have both routers UP: the module before this one
    reboots the core node (haproxy's) and rolls an upgrade back, restarting the routers, and
    haproxy marks a router UP only after its checks pass again."""
    deadline = time.monotonic() + within
    while True:
        shown = cluster.ssh("node1", "/usr/local/sbin/kato-lb show").stdout
        if "node2 UP" in shown and "node3 UP" in shown:
            return
        assert time.monotonic() < deadline, f"haproxy never saw both routers up: {shown}"
        time.sleep(0.5)


def test_haproxy_serves_the_apps_and_the_cluster_file_names_its_hooks(cluster: Cluster) -> None:
    both_routers_up(cluster)
    with Background(cluster, 50, 50) as load:
        pass
    assert load.failures == [] and len(load.latencies) == 50
    shown = cluster.ssh("node1", "/usr/local/sbin/kato-lb show").stdout
    assert "node2 UP" in shown and "node3 UP" in shown
    assert "load_balancer:" in (cluster.home / "cluster.yaml").read_text()


def test_graceful_refusals_change_nothing(cluster: Cluster) -> None:
    before = node_state(cluster)
    major = run(cluster, "upgrade", "prep", "2.0.0")
    assert major.returncode == 7 and "crosses a major version" in major.stderr  # type: ignore[attr-defined]
    jump = run(cluster, "upgrade", "takeover", "2.0.0")
    assert jump.returncode == 7 and "kato upgrade in-place 2.0.0" in jump.stderr  # type: ignore[attr-defined]
    unprepared = run(cluster, "upgrade", "takeover", "1.2.0")
    assert unprepared.returncode == 2 and "kato upgrade prep 1.2.0" in unprepared.stderr  # type: ignore[attr-defined]
    dry = on(cluster, "upgrade", "prep", "1.2.0", "--dry-run").stdout
    assert "router keeps serving on node2, node3" in dry and "nothing was changed" in dry
    assert node_state(cluster) == before


def test_prep_and_takeover_serve_every_request(cluster: Cluster, tmp_path: Path) -> None:
    register(cluster, "forum")
    before = registry(cluster)
    with Background(cluster, 3000, 60) as load:
        prepped = on(cluster, "upgrade", "prep", "1.2.0", "--backup-dir", str(tmp_path))
        assert "next: kato upgrade takeover 1.2.0" in prepped.stdout
        done = on(cluster, "upgrade", "takeover", "1.2.0")
        assert "took over 1.0.0 -> 1.2.0" in done.stdout
    assert load.failures == [], sorted(set(load.failures))[:5]
    assert set(versions(cluster).values()) == {"1.2.0"}
    assert registry(cluster)["format"] == 2
    on(cluster, "upgrade", "rollback", "--yes")
    assert set(versions(cluster).values()) == {"1.0.0"}
    assert registry(cluster) == before


def test_the_broken_release_is_rolled_back_gracefully(cluster: Cluster, tmp_path: Path) -> None:
    before = registry(cluster)
    on(cluster, "upgrade", "prep", "1.2.1-broken", "--backup-dir", str(tmp_path))
    with Background(cluster, 2500, 60) as load:
        done = run(cluster, "upgrade", "takeover", "1.2.1-broken")
    assert done.returncode == 3, done.stderr  # type: ignore[attr-defined]
    assert "rolled back to 1.0.0 and is healthy" in done.stderr  # type: ignore[attr-defined]
    assert load.failures == [], (sorted(set(load.failures))[:5], done.stderr)  # type: ignore[attr-defined]
    assert set(versions(cluster).values()) == {"1.0.0"}
    assert registry(cluster) == before
    shown = cluster.ssh("node1", "/usr/local/sbin/kato-lb show").stdout
    assert "node2 UP" in shown and "node3 UP" in shown


DATA_SERVICES = ("kato-postgresql", "kato-redis", "kato-filesystem")
PSQL = "cd / && runuser -u postgres -- psql -X -q -At -h /run/postgresql"
DATA = (
    f"{PSQL} -c 'SELECT datname FROM pg_database ORDER BY 1'; "
    "cd / && runuser -u postgres -- pg_dumpall -h /run/postgresql "
    "| sed '/restrict /d' | sha256sum; "
    "redis-cli -h 127.0.0.1 --no-raw debug digest; "
    "find /var/lib/kato/data/droplets -printf '%p %y %m %U:%G %s %T@\\n' | LC_ALL=C sort"
)


def data_services(cluster: Cluster) -> dict[str, str]:
    """Each data service's main PID and start time, and a digest of what they hold."""
    host = cluster.host("node1")
    seen = {
        unit: host.check_output(
            f"systemctl show -p MainPID -p ExecMainStartTimestampMonotonic --value {unit}"
        )
        for unit in DATA_SERVICES
    }
    assert all(not v.startswith("0\n") for v in seen.values()), seen  # running
    return {**seen, "data": host.check_output(DATA)}


def test_stateless_leaves_the_data_services_alone_and_holds_the_lock_in_every_phase(
    cluster: Cluster, tmp_path: Path
) -> None:
    from tests.integration.upgrade_steps import Paused, fingerprint, refused_while_held

    cluster.ssh("node1", "redis-cli -h 127.0.0.1 set stateless kept >/dev/null")
    before, data = registry(cluster), data_services(cluster)
    argv = ("upgrade", "prep", "1.2.0", "--stateless", "--backup-dir", str(tmp_path))
    with Paused(cluster, tmp_path / "prep", *argv) as prep:
        held = " ".join(argv)
        prep.walk(("staging", "stopping", "prepped"), lambda: refused_while_held(cluster, held))
        code, out, err = prep.finish()
    assert code == 0 and "next: kato upgrade takeover 1.2.0" in out, err
    prepped = fingerprint(cluster)
    dry = on(cluster, "upgrade", "takeover", "1.2.0", "--dry-run").stdout
    assert "node2: drain" in dry and "nothing was changed" in dry
    assert fingerprint(cluster) == prepped
    phases = ("taking over", "activating", "migrating", "starting", "done")
    with Paused(cluster, tmp_path / "takeover", "upgrade", "takeover", "1.2.0") as taking:
        taking.walk(phases, lambda: refused_while_held(cluster, "upgrade takeover 1.2.0"))
        code, out, err = taking.finish()
    assert code == 0 and "took over 1.0.0 -> 1.2.0" in out, err
    assert set(versions(cluster).values()) == {"1.2.0"}
    assert data_services(cluster) == data  # same PIDs, same start times, same data
    assert cluster.ssh("node1", "redis-cli -h 127.0.0.1 get stateless").stdout == "kept\n"
    on(cluster, "upgrade", "rollback", "--yes")
    assert set(versions(cluster).values()) == {"1.0.0"}
    assert registry(cluster) == before
    cluster.ssh("node1", "redis-cli -h 127.0.0.1 del stateless >/dev/null")
