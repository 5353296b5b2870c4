"""kato data export with the heavy work on the nodes: three nodes export at once into one
archive, every member checked against the files on its node."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Cluster, kato

pytestmark = pytest.mark.integration
DROPLETS = "/var/lib/kato/data/droplets"
RELEASE = "/var/lib/kato/releases/current"
FILL = """
set -e
mkdir -p {d}/speed
head -c {n} /dev/urandom > {d}/speed/random.bin
seq 1 {n} | head -c {n} > {d}/speed/text.log
cd {d} && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
"""


@pytest.fixture
def three_filesystems(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A copy of the cluster file where every node carries the filesystem role's data dir,
    each with its own files (node1 the most); yields it and each node's file checksums."""
    document = yaml.safe_load((cluster.home / "cluster.yaml").read_text())
    for node in document["nodes"]:
        if "filesystem" not in node["roles"]:
            node["roles"].append("filesystem")
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(document))
    # each node defines its roles from the release it runs: node2 and node3 get the role's
    # definition there (as installing the role would), else they have no such data dir
    encoded = cluster.ssh("node1", f"base64 -w0 {RELEASE}/filesystem/role.yaml").stdout.strip()
    for node in ("node2", "node3"):
        done = cluster.ssh(node, f"mkdir -p {RELEASE}/filesystem && echo {encoded} | "
                                 f"base64 -d > {RELEASE}/filesystem/role.yaml")  # fmt: skip
        assert done.returncode == 0, done.stderr
    sums = {}
    for node, size in (("node1", 12_000_000), ("node2", 8_000_000), ("node3", 4_000_000)):
        done = cluster.ssh(node, FILL.format(d=DROPLETS, n=size // 2), timeout=120)
        assert done.returncode == 0, done.stderr
        sums[node] = done.stdout
    try:
        yield path, sums
    finally:
        for node in ("node1", "node2", "node3"):
            extra = "" if node == "node1" else f"; rmdir {DROPLETS} 2>/dev/null || true"
            cluster.ssh(node, f"rm -rf {DROPLETS}/speed{extra}")
            if node != "node1":
                cluster.ssh(node, f"rm -rf {RELEASE}/filesystem")


def test_three_nodes_export_at_once_into_one_archive_that_holds_each_node_s_files(
    cluster: Cluster, three_filesystems: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    cluster_file, sums = three_filesystems
    out = tmp_path / "out"
    out.mkdir()
    kato("--cluster", str(cluster_file), "data", "export", str(out), "--role", "filesystem")
    (archive,) = out.iterdir()
    verified = json.loads(kato("data", "verify", str(archive), "--json").stdout)
    names = [m["name"] for m in verified["manifest"]["members"]]
    assert names == [f"data/{n}/filesystem/droplets.tar" for n in ("node1", "node2", "node3")]
    for node in ("node1", "node2", "node3"):
        member = f"data/{node}/filesystem/droplets.tar"
        tree = tmp_path / node
        tree.mkdir()
        inner = subprocess.run(("tar", "-xOf", str(archive), member), capture_output=True,
                               check=True).stdout  # fmt: skip
        subprocess.run(("tar", "-xf", "-", "-C", str(tree)), input=inner, check=True)
        mine = {line.split()[1]: line.split()[0] for line in sums[node].splitlines()}
        for name, digest in mine.items():
            if name.startswith("./speed/"):
                assert hashlib.sha256((tree / name).read_bytes()).hexdigest() == digest
