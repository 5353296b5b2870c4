"""The reference platform installed, started and stopped by kato, as the nodes see it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.request

import pytest

from tests.integration.conftest import Cluster, kato

pytestmark = pytest.mark.integration
ROUTERS = ("node2", "node3")
STATE = (
    "find /var/lib/kato/releases /etc/kato /etc/systemd/system -xdev "
    "\\( -type f -o -type l \\) -printf '%p %m %s %T@ %l\\n' | sort; "
    "systemctl show -p MainPID --value kato-router kato-dea kato-controller "
    "kato-postgresql kato-redis kato-filesystem 2>/dev/null"
)


def on(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return kato("--cluster", str(cluster.home / "cluster.yaml"), *args, check=check)


def node_state(cluster: Cluster) -> dict[str, str]:
    return {
        n: hashlib.sha256(cluster.host(n).check_output(STATE).encode()).hexdigest()
        for n in ("node1", "node2", "node3")
    }


def test_sandbox_up_left_the_platform_running_and_healthy(cluster: Cluster) -> None:
    done = on(cluster, "status", "--json")
    document = json.loads(done.stdout)
    assert document["unreachable"] == []
    assert {n["name"]: n["version"] for n in document["nodes"]} == {
        "node1": "1.0.0",
        "node2": "1.0.0",
        "node3": "1.0.0",
    }
    assert all(r["health"] == "ok" for n in document["nodes"] for r in n["roles"])
    host = cluster.host("node1")
    for unit in ("kato-postgresql", "kato-redis", "kato-controller", "kato-filesystem"):
        assert host.service(unit).is_running and host.service(unit).is_enabled
    assert host.socket("tcp://127.0.0.1:5432").is_listening
    assert host.file("/etc/kato/node.yaml").contains("name: node1")


def test_routers_serve_apps_with_the_platform_version_header(cluster: Cluster) -> None:
    for router in ROUTERS:
        with urllib.request.urlopen(f"http://{cluster.address(router)}/", timeout=10) as reply:
            assert reply.headers["X-Platform-Version"] == "1.0.0"
            assert reply.read().decode().startswith("hello from node")
        with urllib.request.urlopen(
            f"http://{cluster.address(router)}/healthz", timeout=10
        ) as reply:
            assert reply.status == 200


def test_a_finished_install_rerun_changes_nothing(cluster: Cluster) -> None:
    before = node_state(cluster)
    done = on(cluster, "install", "--version", "1.0.0")
    assert "nothing to do" in done.stderr
    assert node_state(cluster) == before


def test_dry_run_prints_the_plan_and_changes_nothing(cluster: Cluster) -> None:
    before = node_state(cluster)
    done = on(cluster, "install", "--version", "1.1.0", "--dry-run")
    out = done.stdout
    assert "switch current to 1.1.0" in out and "node2:" in out
    stopped = on(cluster, "stop", "--role", "router", "--dry-run").stdout
    assert "systemctl stop -- kato-router.service" in stopped
    assert node_state(cluster) == before
    assert not cluster.host("node2").file("/var/lib/kato/releases/1.1.0").exists


def test_stop_and_start_change_the_units_in_role_order(cluster: Cluster) -> None:
    on(cluster, "stop", "--role", "router")
    try:
        for router in ROUTERS:
            host = cluster.host(router)
            assert not host.service("kato-router").is_running
            assert host.service("kato-dea").is_running
        status = on(cluster, "status", check=False)
        assert status.returncode == 1
    finally:
        on(cluster, "start", "--role", "router")
    assert all(cluster.host(r).service("kato-router").is_running for r in ROUTERS)


def test_restart_gives_the_role_a_new_main_pid(cluster: Cluster) -> None:
    pid = "systemctl show -p MainPID --value kato-controller"
    before = cluster.host("node1").check_output(pid)
    on(cluster, "restart", "--role", "controller")
    after = cluster.host("node1").check_output(pid)
    assert after != before and after != "0"


def test_an_unknown_role_is_a_usage_error(cluster: Cluster) -> None:
    done = on(cluster, "start", "--role", "nosuchrole", check=False)
    assert done.returncode == 2
    assert "'nosuchrole'" in done.stderr and "its roles: " in done.stderr


def test_node_check_runs_the_role_checks_and_reports_each(cluster: Cluster) -> None:
    done = on(cluster, "node", "check", "-n", "node1,node2", "--json")
    checks = json.loads(done.stdout)
    assert {(c["node"], c["role"]) for c in checks} == {
        ("node1", r) for r in ("controller", "postgresql", "redis", "filesystem")
    } | {("node2", "router"), ("node2", "dea")}
    assert all(c["passed"] for c in checks)


def test_node_check_fails_when_a_role_is_down(cluster: Cluster) -> None:
    on(cluster, "stop", "--role", "dea", "--node", "node3")
    try:
        done = on(cluster, "node", "check", "-n", "node3", check=False)
    finally:
        on(cluster, "start", "--role", "dea", "--node", "node3")
    assert done.returncode == 1
    failing = [line for line in done.stdout.splitlines() if "FAIL" in line]
    assert failing and all(line.split()[:2] == ["node3", "dea"] for line in failing)


def test_node_show_names_roles_and_data_dirs(cluster: Cluster) -> None:
    document = json.loads(on(cluster, "node", "show", "-n", "node1", "--json").stdout)
    (node,) = document["nodes"]
    assert node["version"] == "1.0.0"
    assert {d["name"] for d in node["data_dirs"]} == {"services", "controller", "droplets"}


def test_uninstall_removes_units_and_releases_but_keeps_data(cluster: Cluster) -> None:
    host = cluster.host("node3")
    host.check_output("echo keep > /var/lib/kato/data/containers/kato-test-keep")
    on(cluster, "uninstall", "--node", "node3")
    try:
        assert not host.file("/etc/systemd/system/kato-dea.service").exists
        assert not host.service("kato-dea").is_running
        assert not host.file("/var/lib/kato/releases").exists
        assert host.file("/var/lib/kato/data/containers/kato-test-keep").content_string == "keep\n"
    finally:
        on(cluster, "install", "--version", "1.0.0", "--node", "node3")
        on(cluster, "start", "--node", "node3")
        host.run("rm -f /var/lib/kato/data/containers/kato-test-keep")
    assert host.service("kato-dea").is_running and host.service("kato-router").is_running
