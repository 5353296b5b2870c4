"""Releases and upgrades on real nodes: list/show, plan, stage, in-place with its migration,
rollback restoring the pre-upgrade export, and the broken release rolled back by itself.

Every test leaves the cluster on 1.0.0, healthy, with no unfinished upgrade.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from tests.integration.test_platform import node_state, on

pytestmark = pytest.mark.integration


def registry(cluster: Cluster) -> dict[str, object]:
    url = f"http://{cluster.address('node1')}:8181/apps"
    with urllib.request.urlopen(url, timeout=10) as reply:
        document: dict[str, object] = json.loads(reply.read())
    return document


def register(cluster: Cluster, name: str) -> None:
    url = f"http://{cluster.address('node1')}:8181/apps"
    body = json.dumps({"name": name, "instances": 2}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 201


def versions(cluster: Cluster) -> dict[str, str]:
    document = json.loads(on(cluster, "status", "--json").stdout)
    assert all(r["health"] == "ok" for n in document["nodes"] for r in n["roles"]), document
    return {n["name"]: n["version"] for n in document["nodes"]}


def run(cluster: Cluster, *args: str) -> object:
    return on(cluster, *args, check=False)


def test_release_list_names_each_release_by_its_manifest_digest(cluster: Cluster) -> None:
    done = on(cluster, "release", "list", "--json")
    document = json.loads(done.stdout)
    rows = {r["version"]: r for r in document["releases"]}
    assert list(rows) == ["1.0.0", "1.1.0", "1.2.0", "1.2.1-broken", "2.0.0"]
    manifest = (cluster.home / "releases/1.2.0/release.yaml").read_bytes()
    assert rows["1.2.0"]["digest"] == hashlib.sha256(manifest).hexdigest()
    assert set(rows["1.0.0"]["nodes"].values()) == {"current"}
    assert document["running"] == "1.0.0"
    shown = on(cluster, "release", "show", "1.2.0").stdout
    assert "migration controller-registry-v2 (controller)" in shown
    assert "controller  redeployed" in shown and "running: 1.0.0 (upgrade)" in shown
    status = on(cluster, "status").stdout
    assert "update available: 2.0.0" in status


def test_plan_changes_nothing_and_refuses_with_exit_7(cluster: Cluster) -> None:
    before = node_state(cluster)
    done = on(cluster, "upgrade", "plan", "1.2.0")
    out = done.stdout
    assert "ok: every artifact of 1.2.0 matches its sha256" in out
    assert "migrate: controller-registry-v2 on node1" in out
    graceful = run(cluster, "upgrade", "plan", "2.0.0", "--kind", "graceful")
    assert graceful.returncode == 7  # type: ignore[attr-defined]
    assert "crosses a major version" in graceful.stderr  # type: ignore[attr-defined]
    assert "kato upgrade in-place 2.0.0" in graceful.stderr  # type: ignore[attr-defined]
    unknown = run(cluster, "upgrade", "plan", "9.9.9")
    assert unknown.returncode == 2  # type: ignore[attr-defined]
    assert "available versions: 1.0.0, 1.1.0" in unknown.stderr  # type: ignore[attr-defined]
    assert node_state(cluster) == before


def tampered_repo(cluster: Cluster, tmp_path: Path) -> Path:
    """A copy of the cluster file whose repository has one flipped byte in a 1.2.0 artifact."""
    import shutil

    import yaml

    repo = Path(shutil.copytree(cluster.home / "releases", tmp_path / "releases"))
    artifact = repo / "1.2.0/controller-1.2.0.tar.gz"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    document = yaml.safe_load((cluster.home / "cluster.yaml").read_text())
    document["releases"] = str(repo)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_tampered_artifact_is_refused_before_any_node_changes(
    cluster: Cluster, tmp_path: Path
) -> None:
    from tests.integration.conftest import kato

    path = tampered_repo(cluster, tmp_path)
    before = node_state(cluster)
    for command in (("plan", "1.2.0"), ("stage", "1.2.0"), ("in-place", "1.2.0")):
        done = kato("--cluster", str(path), "upgrade", *command, check=False)
        assert done.returncode == 7, (command, done.stderr)
        assert "1.2.0 failed verification: the controller artifact has sha256" in done.stderr
        assert "nothing was changed" in done.stderr
    assert node_state(cluster) == before


def test_every_dry_run_changes_nothing(cluster: Cluster) -> None:
    before = node_state(cluster)
    staged = on(cluster, "upgrade", "stage", "2.0.0", "--dry-run").stdout
    assert "node1: stage controller, postgresql, redis, filesystem 2.0.0" in staged
    moved = on(cluster, "upgrade", "in-place", "2.0.0", "--dry-run").stdout
    assert "activate 2.0.0 on every node" in moved and "nothing was changed" in moved
    pruned = on(cluster, "release", "prune", "--keep", "0", "--dry-run").stdout
    assert "would remove" in pruned
    assert node_state(cluster) == before


def test_stage_touches_nothing_live_and_is_idempotent(cluster: Cluster) -> None:
    pids = cluster.host("node1").check_output("systemctl show -p MainPID --value kato-controller")
    first = on(cluster, "upgrade", "stage", "1.1.0").stdout
    assert "node2: stage router, dea 1.1.0" in first
    host = cluster.host("node2")
    assert host.file("/var/lib/kato/releases/1.1.0/router/.kato-staged-sha256").exists
    assert host.file("/var/lib/kato/releases/current").linked_to == "/var/lib/kato/releases/1.0.0"
    again = on(cluster, "upgrade", "stage", "1.1.0").stdout
    assert "node2: router, dea staged already" in again
    after = cluster.host("node1").check_output("systemctl show -p MainPID --value kato-controller")
    assert after == pids
    rows = json.loads(on(cluster, "release", "list", "--json").stdout)
    staged = next(r for r in rows["releases"] if r["version"] == "1.1.0")
    assert set(staged["nodes"].values()) == {"staged"}


def test_a_one_off_task_runs_with_the_staged_code_and_is_recorded(cluster: Cluster) -> None:
    ran = on(cluster, "upgrade", "task", "1.1.0", "--role", "controller", "--", "cat", "VERSION")
    assert "on node1 (1.1.0/controller): exit 0" in ran.stdout
    assert "last line: 1.1.0" in ran.stdout
    failing = run(
        cluster, "upgrade", "task", "1.1.0", "--role", "router", "--", "sh", "-c", "exit 4"
    )
    assert failing.returncode == 4  # type: ignore[attr-defined]
    unstaged = run(cluster, "upgrade", "task", "2.0.0", "--role", "controller", "--", "true")
    assert unstaged.returncode == 7 and "kato upgrade stage 2.0.0" in unstaged.stderr  # type: ignore[attr-defined]
    listed = json.loads(on(cluster, "upgrade", "tasks", "--json").stdout)
    last = listed[-2:]
    assert [(t["node"], t["command"], t["exit"]) for t in last] == [
        ("node1", ["cat", "VERSION"], 0),
        ("node2", ["sh", "-c", "exit 4"], 4),
    ]


def test_in_place_migrates_and_rollback_restores_the_export(
    cluster: Cluster, tmp_path: Path
) -> None:
    register(cluster, "blog")
    before = registry(cluster)
    done = on(cluster, "upgrade", "in-place", "1.2.0", "--backup-dir", str(tmp_path))
    assert "upgraded 1.0.0 -> 1.2.0" in done.stdout
    assert "downtime" in done.stdout
    assert set(versions(cluster).values()) == {"1.2.0"}
    migrated = registry(cluster)
    assert migrated["format"] == 2
    apps = migrated["apps"]
    assert apps["blog"]["created"] == apps["blog"]["updated"]  # type: ignore[index]
    assert len(list(tmp_path.glob("*.tar.zst"))) == 1
    recorded = json.loads(on(cluster, "upgrade", "tasks", "--json").stdout)
    assert recorded[-1]["command"][0] == "bin/migrate" and recorded[-1]["exit"] == 0
    back = run(cluster, "upgrade", "plan", "1.0.0")
    assert back.returncode == 7 and "kato upgrade rollback" in back.stderr  # type: ignore[attr-defined]
    unconfirmed = run(cluster, "upgrade", "rollback")
    assert unconfirmed.returncode == 7  # type: ignore[attr-defined]
    assert "changes made to that data since the export are lost" in unconfirmed.stderr  # type: ignore[attr-defined]
    assert set(versions(cluster).values()) == {"1.2.0"}
    cluster.ssh("node3", "rm -rf /var/lib/kato/releases/1.0.0")
    gone = run(cluster, "upgrade", "rollback", "--yes")
    assert gone.returncode == 7 and "kato upgrade stage 1.0.0" in gone.stderr  # type: ignore[attr-defined]
    assert set(versions(cluster).values()) == {"1.2.0"}  # nothing was stopped
    on(cluster, "upgrade", "stage", "1.0.0")
    on(cluster, "upgrade", "rollback", "--yes")
    assert set(versions(cluster).values()) == {"1.0.0"}
    assert registry(cluster) == before
    status = on(cluster, "upgrade", "status", "--json").stdout
    assert json.loads(status)["record"]["result"] == "rolled back"


def test_the_broken_release_is_rolled_back_by_itself_with_the_data_intact(
    cluster: Cluster, tmp_path: Path
) -> None:
    register(cluster, "shop")
    before = registry(cluster)
    done = run(cluster, "upgrade", "in-place", "1.2.1-broken", "--backup-dir", str(tmp_path))
    assert done.returncode == 3, done.stderr  # type: ignore[attr-defined]
    assert "controller not healthy within 10s" in done.stderr  # type: ignore[attr-defined]
    assert "rolled back to 1.0.0 and is healthy" in done.stderr  # type: ignore[attr-defined]
    assert set(versions(cluster).values()) == {"1.0.0"}
    assert registry(cluster) == before
    for router in ("node2", "node3"):
        with urllib.request.urlopen(f"http://{cluster.address(router)}/", timeout=10) as reply:
            assert reply.headers["X-Platform-Version"] == "1.0.0"


def test_prune_keeps_current_and_previous(cluster: Cluster) -> None:
    on(cluster, "upgrade", "stage", "1.1.0")
    dry = on(cluster, "release", "prune", "--keep", "0", "--dry-run").stdout
    node2 = next(line for line in dry.splitlines() if line.startswith("node2: would remove"))
    assert "1.1.0" in node2
    assert cluster.host("node2").file("/var/lib/kato/releases/1.1.0").exists
    on(cluster, "release", "prune", "--keep", "0")
    host = cluster.host("node2")
    assert not host.file("/var/lib/kato/releases/1.1.0").exists
    assert host.file("/var/lib/kato/releases/1.0.0").exists
    previous = host.file("/var/lib/kato/releases/previous").linked_to
    assert host.file(str(previous)).is_directory
    assert set(versions(cluster).values()) == {"1.0.0"}
