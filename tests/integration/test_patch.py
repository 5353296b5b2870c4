"""`kato patch status|install|revert` on real nodes, node state checked with testinfra."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import KATO, Cluster, kato

pytestmark = pytest.mark.integration
NODES = ("node1", "node2", "node3")
BUILD_PATCHES = Path(__file__).resolve().parents[2] / "scripts" / "build-patches"
SAMPLE = ("apps-served-by", "controller-server-header", "router-nosniff")
# every file of the installed releases with its mode, size and sha256, and the patch records
FILES = (
    "cd /var/lib/kato && find releases -xdev -type f -printf '%p %m %s\\n' | sort; "
    "find releases -xdev -type f -print0 | sort -z | xargs -0 sha256sum; "
    "ls /var/lib/kato/patches 2>/dev/null || true"
)


def on(
    cluster: Cluster, *args: str, check: bool = False, **kw: object
) -> subprocess.CompletedProcess[str]:
    return kato("--cluster", str(cluster.home / "cluster.yaml"), *args, check=check, **kw)  # type: ignore[arg-type]


def files(cluster: Cluster) -> dict[str, str]:
    return {n: cluster.host(n).check_output(FILES) for n in NODES}


def status(cluster: Cluster) -> dict[str, dict[str, object]]:
    done = on(cluster, "patch", "status", "--json", check=True)
    return {p["name"]: p for p in json.loads(done.stdout)["patches"]}


def main_pid(cluster: Cluster, node: str, unit: str) -> str:
    return str(cluster.host(node).check_output(f"systemctl show -p MainPID --value {unit}"))


def revert_everything(cluster: Cluster) -> None:
    for name in (*SAMPLE, "slow-router", "unhealthy-router"):
        on(cluster, "patch", "revert", name, "--repo", str(cluster.home / "patches"))


@pytest.fixture
def pristine(cluster: Cluster) -> Iterator[dict[str, str]]:
    """The nodes' release files before the test; every patch is reverted after it."""
    revert_everything(cluster)
    before = files(cluster)
    yield before
    revert_everything(cluster)
    assert files(cluster) == before  # reverting restored every file byte for byte


def test_status_before_and_after_one_patch_then_all(
    cluster: Cluster, pristine: dict[str, str]
) -> None:
    text = on(cluster, "patch", "status", check=True).stdout
    assert text.startswith("3 updates available to be installed.\n")
    assert "Known updates for kato-reference 1.0.0:" in text
    assert "  controller-server-header: the controller names" in text
    assert "    severity: required\n    roles affected: controller\n" in text
    assert "controller-headers-110" not in text  # a patch for 1.1.0
    assert {n: s["missing"] for n, s in status(cluster).items()} == {
        "apps-served-by": ["node2", "node3"],
        "controller-server-header": ["node1"],
        "router-nosniff": ["node2", "node3"],
    }

    on(cluster, "patch", "install", "controller-server-header", check=True)
    after_one = files(cluster)
    assert after_one["node1"] != pristine["node1"]
    assert (after_one["node2"], after_one["node3"]) == (pristine["node2"], pristine["node3"])
    now = status(cluster)
    assert now["controller-server-header"]["installed"] == ["node1"]
    assert now["controller-server-header"]["restart_pending"] == []
    assert now["router-nosniff"]["installed"] == []
    server = cluster.host("node1").check_output("curl -sSI http://127.0.0.1:8181/healthz")
    assert "Server: kato-controller+p1" in server
    assert "2 updates available" in on(cluster, "patch", "status").stdout

    on(cluster, "patch", "install", check=True)
    assert all(s["missing"] == [] for s in status(cluster).values())
    assert on(cluster, "patch", "status").stdout.startswith("0 updates available")
    for router in ("node2", "node3"):
        headers = cluster.host(router).check_output("curl -sSI http://127.0.0.1/")
        assert "X-Content-Type-Options: nosniff" in headers and "X-Apps-Patch: p3" in headers
        record = json.loads(
            cluster.host(router).file("/var/lib/kato/patches/router-nosniff.json").content_string
        )
        assert (record["format"], record["version"], record["roles"]) == (1, "1.0.0", ["router"])
    again = on(cluster, "patch", "install")  # installing installed patches changes nothing
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_no_restart_keeps_the_main_pid_and_status_says_restart_pending(
    cluster: Cluster, pristine: dict[str, str]
) -> None:
    pid = main_pid(cluster, "node1", "kato-controller")
    on(cluster, "patch", "install", "controller-server-header", "--no-restart", check=True)
    assert main_pid(cluster, "node1", "kato-controller") == pid
    assert status(cluster)["controller-server-header"]["restart_pending"] == ["node1"]
    assert "restart pending on: node1" in on(cluster, "patch", "status").stdout
    on(cluster, "patch", "install", "controller-server-header", check=True)  # restarts it now
    assert main_pid(cluster, "node1", "kato-controller") != pid
    assert status(cluster)["controller-server-header"]["restart_pending"] == []


def test_node_and_only_this_node_touch_one_node(
    cluster: Cluster, pristine: dict[str, str], tmp_path: Path
) -> None:
    on(cluster, "patch", "install", "router-nosniff", "--node", "node2", check=True)
    assert status(cluster)["router-nosniff"]["installed"] == ["node2"]
    assert files(cluster)["node3"] == pristine["node3"]
    on(cluster, "patch", "revert", "router-nosniff", check=True)

    identity = tmp_path / "node.yaml"  # kato runs on node3, as its node.yaml says
    identity.write_text(cluster.host("node3").file("/etc/kato/node.yaml").content_string)
    done = on(
        cluster, "patch", "install", "--only-this-node", env={"KATO_NODE_FILE": str(identity)}
    )
    assert done.returncode == 0, done.stderr
    now = status(cluster)
    assert now["router-nosniff"]["installed"] == ["node3"]
    assert now["apps-served-by"]["installed"] == ["node3"]
    after = files(cluster)
    assert (after["node1"], after["node2"]) == (pristine["node1"], pristine["node2"])


def test_bad_names_and_versions_are_refused_before_any_node_changes(
    cluster: Cluster, pristine: dict[str, str]
) -> None:
    unknown = on(cluster, "patch", "install", "no-such-patch")
    assert unknown.returncode == 2
    assert "no patch named no-such-patch" in unknown.stderr and "router-nosniff" in unknown.stderr
    other = on(cluster, "patch", "install", "controller-headers-110")
    assert other.returncode == 7, other.stderr
    assert "applies to platform 1.1.0" in other.stderr
    assert files(cluster) == pristine


def test_a_tampered_artifact_is_refused_before_any_node_changes(
    cluster: Cluster, pristine: dict[str, str], tmp_path: Path
) -> None:
    repo = tmp_path / "patches"
    shutil.copytree(cluster.home / "patches", repo)
    artifact = repo / "router-nosniff.tar.gz"
    data = bytearray(artifact.read_bytes())
    data[-20] ^= 0xFF
    artifact.write_bytes(bytes(data))
    done = on(cluster, "patch", "install", "--repo", str(repo))
    assert done.returncode == 1, done.stderr
    assert "the artifact of patch router-nosniff has sha256" in done.stderr
    assert files(cluster) == pristine


def build_repo(tmp_path: Path, name: str, conf: str, apply: str | None = None) -> Path:
    source = tmp_path / "src" / name
    (source / "files/router/conf.d").mkdir(parents=True)
    (source / "files/router/conf.d" / f"{name}.conf").write_text(conf)
    spec = f"description: test patch {name}\nseverity: optional\nroles: [router]\n"
    spec += 'applies_to: ["1.0.0"]\n' + (f"apply: {apply}\n" if apply else "")
    (source / "patch.yaml").write_text(spec)
    if apply:
        (source / apply).write_text("#!/bin/sh\ntouch /run/kato-test-applying\nsleep 6\n")
    dest = tmp_path / "repo"
    done = subprocess.run(
        (str(BUILD_PATCHES), str(dest), "--source", str(source.parent)),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return dest


def test_a_failing_health_check_is_reverted_on_the_canary_and_stops_the_rollout(
    cluster: Cluster, pristine: dict[str, str], tmp_path: Path
) -> None:
    repo = build_repo(tmp_path, "unhealthy-router", "if ($uri = /healthz) { return 503; }\n")
    done = on(cluster, "patch", "install", "--repo", str(repo), "--canary", "node3")
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert any(
        line.startswith("node3") and "failed in health" in line and "undone" in line
        for line in lines
    )
    assert any(line.startswith("node2") and "not started" in line for line in lines)
    assert files(cluster) == pristine
    assert cluster.host("node3").service("kato-router").is_running
    assert "HTTP/1.1 200" in cluster.host("node3").check_output(
        "curl -sSI http://127.0.0.1/healthz"
    )


def test_a_node_crashed_mid_rollout_is_named_and_a_rerun_completes(
    cluster: Cluster, pristine: dict[str, str], tmp_path: Path
) -> None:
    repo = build_repo(tmp_path, "slow-router", "add_header X-Slow yes always;\n", apply="slow")
    args = (
        "--cluster",
        str(cluster.home / "cluster.yaml"),
        "patch",
        "install",
        "--repo",
        str(repo),
    )
    running = subprocess.Popen(
        (*KATO, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while cluster.ssh("node3", "test -e /run/kato-test-applying").returncode != 0:
            assert time.monotonic() < deadline and running.poll() is None, "node3 never applied"
            time.sleep(0.2)
        kato("sandbox", "crash", "node3", "--name", cluster.name)
        out, err = running.communicate(timeout=120)
    finally:
        if running.poll() is None:
            running.kill()
    try:
        assert running.returncode == 3, err
        lines = out.splitlines()
        assert any(line.startswith("node3") and "failed" in line for line in lines)
        # every node applies at once before any restart: node3's failed apply put node2 back
        assert any(line.startswith("node2") and "not started" in line for line in lines)
        assert not cluster.host("node2").file("/var/lib/kato/patches/slow-router.json").exists
    finally:
        kato("sandbox", "start", "node3", "--name", cluster.name)
    text = on(cluster, "patch", "status", "--repo", str(repo), check=True).stdout
    assert "interrupted on: node3" in text
    done = on(cluster, "patch", "install", "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    document = json.loads(
        on(cluster, "patch", "status", "--repo", str(repo), "--json", check=True).stdout
    )
    assert document["patches"][0]["installed"] == ["node2", "node3"]
    assert "X-Slow: yes" in cluster.host("node3").check_output("curl -sSI http://127.0.0.1/")
