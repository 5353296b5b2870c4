"""Role definitions travel with the release, on real nodes: status, restart and data export
follow the definitions of the release each node runs (1.2.0's controller has another health
check and one more data dir than 1.0.0's), also in a mixed cluster; and 1.2.0's migration moves
the controller's registry into a PostgreSQL table with a backfilled column, safe to run again,
undone by `upgrade rollback`.

Leaves the cluster on 1.0.0, healthy, with the upgrade record saying "rolled back".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from tests.integration.test_platform import on
from tests.integration.test_upgrade import register, registry, run

pytestmark = pytest.mark.integration

DATA = "/var/lib/kato/data/controller"
COLUMNS = (
    "SELECT json_agg(json_build_object('name', name, 'instances', instances, "
    "'updated', updated, 'created', created) ORDER BY name) FROM apps"
)


def sql(cluster: Cluster, query: str) -> str:
    done = cluster.ssh(
        "node1",
        f'cd / && runuser -u postgres -- psql -X -q -A -t -d kato_controller -c "{query}"',
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def status(cluster: Cluster) -> dict[str, dict[str, object]]:
    done = run(cluster, "status", "--json")
    document = json.loads(done.stdout)  # type: ignore[attr-defined]
    return {n["name"]: n for n in document["nodes"]}


def controller_health(cluster: Cluster) -> str:
    roles = status(cluster)["node1"]["roles"]
    return next(str(r["health"]) for r in roles if r["role"] == "controller")  # type: ignore[attr-defined]


def exported(cluster: Cluster, tmp_path: Path) -> set[tuple[str, str, str]]:
    """(node, role, data dir) of every member `kato data export --dry-run` would write."""
    done = on(cluster, "data", "export", str(tmp_path / "x"), "--dry-run", "--json")
    plan = json.loads(done.stdout)["plan"]
    return {(p["source"]["node"], p["source"]["role"], p["source"]["data_dir"]) for p in plan}


def check_the_table(cluster: Cluster, before: dict[str, object]) -> None:
    """The registry is in kato_controller.apps, `created` backfilled from `updated`."""
    rows = json.loads(sql(cluster, COLUMNS))
    apps = before["apps"]
    assert isinstance(apps, dict)
    assert [r["name"] for r in rows] == sorted(apps)
    for row in rows:
        old = apps[row["name"]]
        assert (row["instances"], row["updated"]) == (old["instances"], old["updated"])
        assert row["created"] == row["updated"]
    nullable = "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'apps' "
    assert sql(cluster, nullable + "AND column_name = 'created'") == "NO"
    left = cluster.ssh("node1", f"ls {DATA}").stdout.split()
    assert left == ["registry-moved-to-postgresql.json"]


def check_a_second_run_is_safe(cluster: Cluster) -> None:
    """As if killed after its commit but before the rename: the same file moved again."""
    table = sql(cluster, COLUMNS)
    copied = cluster.ssh(
        "node1", f"cp -p {DATA}/registry-moved-to-postgresql.json {DATA}/state.json"
    )
    assert copied.returncode == 0
    argv = ("bin/migrate", "--data-dir", DATA)
    done = on(cluster, "upgrade", "task", "1.2.0", "--role", "controller", "--", *argv)
    assert "apps moved to kato_controller.apps" in done.stdout
    assert sql(cluster, COLUMNS) == table
    again = on(cluster, "upgrade", "task", "1.2.0", "--role", "controller", "--", *argv)
    assert "nothing to move" in again.stdout
    assert sql(cluster, COLUMNS) == table


def check_commands_follow_1_2_0(cluster: Cluster, tmp_path: Path) -> None:
    nodes = status(cluster)
    assert {n: v["definitions"] for n, v in nodes.items()} == {
        n: "release 1.2.0 on the node" for n in ("node1", "node2", "node3")
    }
    assert ("node1", "controller", "audit") in exported(cluster, tmp_path)
    register(cluster, "wiki")  # the 1.2.0 controller writes the table and its audit log
    audit = cluster.ssh("node1", "cat /var/lib/kato/data/controller-audit/registrations.jsonl")
    assert json.loads(audit.stdout.splitlines()[-1])["name"] == "wiki"
    # Without its database, 1.2.0's controller still runs but fails 1.2.0's health check:
    # status says so and a restart waits for it in vain.
    on(cluster, "stop", "--role", "postgresql")
    assert (
        controller_health(cluster)
        == "failing: HTTP 503 from http://127.0.0.1:8181/healthz/registry"
    )
    restarted = run(cluster, "restart", "--role", "controller", "--verbose")
    assert restarted.returncode != 0, restarted.stdout  # type: ignore[attr-defined]
    assert "node1: role definitions from release 1.2.0 on the node" in restarted.stderr  # type: ignore[attr-defined]
    on(cluster, "start")
    assert controller_health(cluster) == "ok"


def check_a_mixed_cluster(cluster: Cluster) -> None:
    on(cluster, "install", "--version", "1.1.0", "--node", "node2")
    sources = {n: v["definitions"] for n, v in status(cluster).items()}
    assert sources == {
        "node1": "release 1.2.0 on the node",
        "node2": "release 1.1.0 on the node",
        "node3": "release 1.2.0 on the node",
    }
    done = on(cluster, "restart", "--role", "router", "--verbose")
    assert "node2: role definitions from release 1.1.0 on the node" in done.stderr
    on(cluster, "install", "--version", "1.2.0", "--node", "node2")  # 1.1.0 not kept as previous


def test_each_node_follows_its_release_and_1_2_0_keeps_the_registry_in_postgresql(
    cluster: Cluster, tmp_path: Path
) -> None:
    register(cluster, "docs")
    before = registry(cluster)
    assert ("node1", "controller", "audit") not in exported(cluster, tmp_path)
    on(cluster, "upgrade", "in-place", "1.2.0", "--backup-dir", str(tmp_path))
    try:
        check_the_table(cluster, before)
        check_a_second_run_is_safe(cluster)
        check_commands_follow_1_2_0(cluster, tmp_path)
        check_a_mixed_cluster(cluster)
    finally:
        on(cluster, "upgrade", "rollback", "--yes")
    assert registry(cluster) == before  # what was written at 1.2.0 is gone with it
    nodes = status(cluster)
    assert {n: (v["version"], v["definitions"]) for n, v in nodes.items()} == {
        n: ("1.0.0", "release 1.0.0 on the node") for n in ("node1", "node2", "node3")
    }
    # 1.0.0's controller keeps its registry in a file: its health does not need PostgreSQL.
    on(cluster, "stop", "--role", "postgresql")
    try:
        assert controller_health(cluster) == "ok"
        on(cluster, "restart", "--role", "controller")
    finally:
        on(cluster, "start")
    assert ("node1", "controller", "audit") not in exported(cluster, tmp_path)
    on(cluster, "release", "prune", "--keep", "0")  # node2's 1.1.0: as the other tests expect
