"""Root never writes through a planted link: a symlink to a canary placed at each path that
patch install, install, a schedule run, the journal write and an upgrade's stage write leaves
the canary unchanged, and the command refuses naming the path; at the old predictable
temporary names it changes nothing at all."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, kato

pytestmark = pytest.mark.integration
CANARY = "/root/kato-canary"
PATCH = "router-nosniff"
LAID = "/var/lib/kato/releases/1.0.0/router/conf.d/nosniff.conf"
RECORD = f"/var/lib/kato/patches/{PATCH}.json"
STAGED = f"/var/lib/kato/staging/patch-{PATCH}.tar.gz"
JOURNAL = "/var/log/kato/journal.jsonl"


def on(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return kato("--cluster", str(cluster.home / "cluster.yaml"), *args, check=False)


def sh(cluster: Cluster, node: str, script: str) -> str:
    done = cluster.ssh(node, script, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def canary_state(cluster: Cluster, node: str) -> str:
    return sh(cluster, node, f"stat -c '%a %U %s %Y' {CANARY}; sha256sum {CANARY}")


@pytest.fixture
def canary(cluster: Cluster) -> Iterator[dict[str, str]]:
    """A file root must not touch, on every node; its state before."""
    states = {}
    for node in ("node1", "node2"):
        sh(cluster, node, f"printf 'canary\\n' > {CANARY}; chmod 600 {CANARY}")
        states[node] = canary_state(cluster, node)
    yield states
    for node in ("node1", "node2"):
        assert canary_state(cluster, node) == states[node], f"{node}: the canary changed"
        sh(cluster, node, f"rm -f {CANARY}")


def plant(cluster: Cluster, node: str, path: str) -> None:
    sh(cluster, node, f"mkdir -p {Path(path).parent} && ln -sfn {CANARY} {path}")


def not_applied(cluster: Cluster) -> None:
    done = on(cluster, "patch", "revert", PATCH, "--node", "node2")
    listing = sh(cluster, "node2", "ls -la /var/lib/kato/patches || true")
    said = f"exit {done.returncode}\n{done.stdout}\n{done.stderr}\n{listing}"
    assert cluster.ssh("node2", f"test -e {RECORD}").returncode != 0, said


@pytest.mark.parametrize("planted", [STAGED, LAID, RECORD], ids=["upload", "laid", "record"])
def test_patch_install_refuses_a_link_where_it_writes(
    cluster: Cluster, canary: dict[str, str], planted: str
) -> None:
    plant(cluster, "node2", planted)
    try:
        done = on(cluster, "patch", "install", PATCH, "--node", "node2", "--no-restart")
        assert done.returncode == 1, done.stderr
        assert f"{planted} is a symbolic link" in done.stdout + done.stderr
        assert sh(cluster, "node2", f"readlink {planted}").strip() == CANARY
    finally:
        sh(cluster, "node2", f"rm -f {planted}")
        if planted == LAID:  # the patch adds this file: nothing else may have changed
            assert cluster.ssh("node2", f"test -e {RECORD}").returncode != 0
        not_applied(cluster)


@pytest.mark.parametrize(
    "planted", [f"{LAID}.kato-patch-tmp", f"{RECORD}.kato-patch-tmp"], ids=["laid", "record"]
)
def test_patch_install_ignores_links_at_the_old_temporary_names(
    cluster: Cluster, canary: dict[str, str], planted: str
) -> None:
    plant(cluster, "node2", planted)
    try:
        done = on(cluster, "patch", "install", PATCH, "--node", "node2", "--no-restart")
        assert done.returncode == 0, done.stderr
    finally:
        sh(cluster, "node2", f"rm -f {planted}")
        not_applied(cluster)


def test_install_refuses_a_link_at_the_staged_artifact(
    cluster: Cluster, canary: dict[str, str]
) -> None:
    marker = "/var/lib/kato/releases/1.0.0/router/.kato-artifact-sha256"
    staged = "/var/lib/kato/staging/router-1.0.0.tar.gz"
    saved = sh(cluster, "node2", f"cat {marker}")
    sh(cluster, "node2", f"rm {marker}")  # so that install uploads the router artifact again
    plant(cluster, "node2", staged)
    try:
        done = on(cluster, "install", "--version", "1.0.0", "--node", "node2")
        assert done.returncode == 1, done.stderr
        assert f"{staged} is a symbolic link" in done.stdout + done.stderr
    finally:
        sh(cluster, "node2", f"rm -f {staged}")
        done = on(cluster, "install", "--version", "1.0.0", "--node", "node2")
        assert done.returncode == 0, done.stderr
        assert sh(cluster, "node2", f"cat {marker}") == saved


def test_install_refuses_a_link_at_the_node_file(cluster: Cluster, canary: dict[str, str]) -> None:
    node_file = "/etc/kato/node.yaml"
    saved = sh(cluster, "node2", f"cat {node_file}")
    sh(cluster, "node2", f"rm {node_file}")
    plant(cluster, "node2", node_file)
    try:
        done = on(cluster, "install", "--version", "1.0.0", "--node", "node2")
        assert done.returncode == 1, done.stderr
        assert f"{node_file} is a symbolic link" in done.stdout + done.stderr
    finally:
        sh(cluster, "node2", f"rm -f {node_file}")
        assert on(cluster, "install", "--version", "1.0.0", "--node", "node2").returncode == 0
        assert sh(cluster, "node2", f"cat {node_file}") == saved


def test_the_journal_is_never_written_through_a_link(
    cluster: Cluster, canary: dict[str, str]
) -> None:
    sh(cluster, "node1", f"mv {JOURNAL} {JOURNAL}.saved")
    plant(cluster, "node1", JOURNAL)
    try:
        done = on(cluster, "run", "--node", "node2", "--", "true")
        assert done.returncode == 1, done.stderr
        assert f"{JOURNAL} is a symbolic link" in done.stdout + done.stderr
    finally:
        sh(cluster, "node1", f"rm -f {JOURNAL}; mv {JOURNAL}.saved {JOURNAL}")
    assert on(cluster, "lock", "status").returncode == 0


def test_a_schedule_run_never_writes_its_metric_through_a_link(
    cluster: Cluster, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    before = hashlib.sha256(victim.read_bytes()).hexdigest()
    metric = tmp_path / "metrics" / "kato_backup.prom"
    metric.parent.mkdir(mode=0o755)
    metric.symlink_to(victim)
    done = on(cluster, "data", "schedule", "run", "--dest", str(tmp_path / "archives"),
              "--role", "redis", "--metrics", str(metric))  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"{metric} is a symbolic link" in done.stdout + done.stderr
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == before
    assert metric.is_symlink()


def test_import_refuses_a_data_dir_that_is_a_link(cluster: Cluster, tmp_path: Path) -> None:
    droplets = "/var/lib/kato/data/droplets"
    archive = tmp_path / "droplets.tar"
    on(cluster, "data", "export", str(archive), "--role", "filesystem", "--compress", "none")
    sh(cluster, "node1", f"mkdir -p /root/kato-canary-dir && echo keep > /root/kato-canary-dir/f"
       f" && mv {droplets} {droplets}.saved && ln -s /root/kato-canary-dir {droplets}")  # fmt: skip
    try:
        done = on(cluster, "data", "import", str(archive), "--role", "filesystem")
        assert done.returncode == 1, done.stderr
        assert f"{droplets} is a symbolic link" in done.stderr
        assert sh(cluster, "node1", "ls -A /root/kato-canary-dir; cat /root/kato-canary-dir/f") \
            == "f\nkeep\n"  # fmt: skip
        assert sh(cluster, "node1", "systemctl is-active kato-filesystem").strip() == "active"
    finally:
        sh(cluster, "node1", f"rm -f {droplets}; mv {droplets}.saved {droplets}; "
           "rm -rf /root/kato-canary-dir")  # fmt: skip


def test_export_never_writes_through_a_link_at_its_destination(
    cluster: Cluster, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "out.tar").symlink_to(victim)
    done = on(cluster, "data", "export", str(tmp_path / "out.tar"), "--role", "redis")
    assert done.returncode == 2, done.stderr
    assert f"{tmp_path / 'out.tar'} exists: export never overwrites" in done.stderr
    assert victim.read_text() == "precious\n"


def test_relocate_refuses_a_link_planted_at_an_app_directory(cluster: Cluster) -> None:
    """An app's user can write the containers dir: a link there to a directory root must not
    touch is refused when its app would become a limited subvolume, naming the link."""
    containers, dest = "/var/lib/kato/data/containers", "/mnt/kq/k"
    kato("sandbox", "disk", "node2", "--name", cluster.name, "--fs", "btrfs", "--size", "512M",
         "--at", "/mnt/kq")  # fmt: skip
    sh(cluster, "node2", f"mkdir -p {CANARY}-dir && echo keep > {CANARY}-dir/f && "
       f"mkdir -p {containers}/app-ok && ln -s {CANARY}-dir {containers}/app-x")  # fmt: skip
    try:
        done = on(cluster, "relocate", "containers", dest, "--node", "node2",
                  "--app-limit", "10M")  # fmt: skip
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"{dest}/dea/app-x is a symbolic link (to {CANARY}-dir)" in done.stderr, done.stderr
        assert sh(cluster, "node2", f"ls -A {CANARY}-dir; cat {CANARY}-dir/f") == "f\nkeep\n"
        assert sh(cluster, "node2", f"stat -c %i {CANARY}-dir").strip() != "256"
        assert sh(cluster, "node2", f"stat -c %i {dest}/dea/app-ok").strip() != "256"
        status = json.loads(on(cluster, "relocate", "status", "--json").stdout)
        assert {d["path"] for d in status["dirs"] if d["name"] == "containers"} == {containers}
    finally:
        sh(
            cluster,
            "node2",
            f"rm -rf {CANARY}-dir {containers}/app-x {containers}/app-ok && "
            "python3 /var/lib/kato/agent/*/datadirs.py / moving dea containers - - >/dev/null",
        )
        kato("sandbox", "disk", "node2", "--name", cluster.name, "--at", "/mnt/kq", "--remove")


@contextmanager
def stage_refused(cluster: Cluster, planted: str) -> Iterator[None]:
    """`kato upgrade stage 1.1.0` with a link planted at `planted` on node2: refused naming
    it, the link left as it was; then every node's 1.1.0 removed (the shared cluster stays on
    1.0.0 alone; the other nodes may have staged it)."""
    plant(cluster, "node2", planted)
    try:
        done = on(cluster, "upgrade", "stage", "1.1.0")
        assert done.returncode != 0, done.stdout
        assert f"{planted} is a symbolic link" in done.stdout + done.stderr
        assert sh(cluster, "node2", f"readlink {planted}").strip() == CANARY
        yield
    finally:
        for node in (str(n["name"]) for n in cluster.nodes):
            sh(cluster, node, f"rm -rf /var/lib/kato/releases/1.1.0 {planted}")


def test_upgrade_stage_refuses_a_link_at_the_uploaded_artifact(
    cluster: Cluster, canary: dict[str, str]
) -> None:
    with stage_refused(cluster, "/var/lib/kato/staging/router-1.1.0.tar.gz"):
        assert cluster.ssh("node2", "test -e /var/lib/kato/releases/1.1.0/router").returncode != 0


def test_upgrade_stage_never_writes_the_release_record_through_a_link(
    cluster: Cluster, canary: dict[str, str]
) -> None:
    """The upgrade agent's own writes on a real node (here the release record it leaves
    beside a staged role) refuse a link planted at their path, as its unit tests show on a
    temporary tree; the canary fixture checks that root wrote nothing through it."""
    with stage_refused(cluster, "/var/lib/kato/releases/1.1.0/.kato-release.json"):
        pass
