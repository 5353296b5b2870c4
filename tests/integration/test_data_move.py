"""Moving to a new cluster: an archive of the session cluster imported into a second sandbox
with another number and naming of nodes, from a file and straight from the live old cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Cluster, kato, sandbox_name
from tests.integration.test_data import FILL, SNAPSHOT, WIPE, shell

pytestmark = pytest.mark.integration
NEW = sandbox_name("move")
RENAMED = {"node1": "core-a", "node2": "apps-b"}


@pytest.fixture(scope="module")
def old(cluster: Cluster) -> Iterator[str]:
    shell(cluster, "node1", FILL)
    yield shell(cluster, "node1", SNAPSHOT)
    cluster.ssh("node1", WIPE)


@pytest.fixture(scope="module")
def new(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    """A 2-node sandbox whose cluster file calls its nodes core-a and apps-b."""
    kato("sandbox", "down", "--name", NEW)
    up = json.loads(kato("sandbox", "up", "--name", NEW, "--nodes", "2", "--json").stdout)
    home = Path(up["cluster_file"]).parent
    document = yaml.safe_load((home / "cluster.yaml").read_text())
    document["core"] = RENAMED[document["core"]]
    for node in document["nodes"]:
        node["name"] = RENAMED[node["name"]]
    if "load_balancer" in document:  # the node running haproxy's drain hooks is renamed too
        document["load_balancer"]["node"] = RENAMED[document["load_balancer"]["node"]]
    renamed = tmp_path_factory.mktemp("move") / "cluster.yaml"
    renamed.write_text(yaml.safe_dump(document))
    try:
        yield Cluster(NEW, home, up), renamed
    finally:
        kato("sandbox", "down", "--name", NEW)


def test_an_archive_moves_to_a_cluster_with_other_nodes(
    cluster: Cluster, old: str, new: tuple[Cluster, Path], tmp_path: Path
) -> None:
    target, config = new
    kato("--cluster", str(cluster.home / "cluster.yaml"), "data", "export", str(tmp_path))
    (archive,) = tmp_path.iterdir()
    done = kato("--cluster", str(config), "data", "import", str(archive))
    assert "core-a" in done.stdout
    assert shell(target, "node1", SNAPSHOT) == old
    shell(target, "node1", WIPE)


def test_import_straight_from_the_live_old_cluster(
    cluster: Cluster, old: str, new: tuple[Cluster, Path]
) -> None:
    target, config = new
    # the old core node trusts the new cluster's admin key; the new cluster its host key
    public = (target.home / "id_ed25519.pub").read_text().strip()
    shell(cluster, "node1", f"echo '{public}' >> /root/.ssh/authorized_keys")
    document = yaml.safe_load(config.read_text())
    known = Path(document["ssh"]["known_hosts"])
    address = cluster.address("node1")
    old_key = next(
        line for line in (cluster.home / "known_hosts").read_text().splitlines()
        if line.startswith(f"{address} ")
    )  # fmt: skip
    original = known.read_text()
    known.write_text(original + old_key + "\n")
    try:
        done = kato("--cluster", str(config), "data", "import", f"ssh://root@{address}")
        assert "exporting from ssh://root@" in done.stderr
        assert shell(target, "node1", SNAPSHOT) == old
    finally:
        known.write_text(original)
        target.ssh("node1", WIPE)  # best effort: the import may not have happened
