"""A cluster file that cannot work is refused before any node is touched (exit 2), naming the
file, the key and, for YAML errors, the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, kato

pytestmark = pytest.mark.integration
SENTINEL = "/root/kato-cluster-file-sentinel"


def edited(cluster: Cluster, tmp_path: Path, old: str, new: str) -> Path:
    text = (cluster.home / "cluster.yaml").read_text()
    assert old in text, text
    path = tmp_path / "cluster.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def address_line(cluster: Cluster) -> str:
    return f"address: {cluster.address('node1')}"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("command_timeout: 600", "command_timeout: .nan"), "command_timeout: must be a number"),
        (("command_timeout: 600", "command_timeout: .inf"), "command_timeout: must be a number"),
        ((None, "address: 999.1.1.1"), "nodes[0].address: '999.1.1.1' is not an IP address"),
        (("name: node1\n", 'name: "node1\\n"\n'), "nodes[0].name: 'node1\\n' contains a control"),
        (("ssh:\n", "name: other\nssh:\n"), "the key 'name' is given twice (first on line"),
        (("ssh:\n", "ssh: [\n"), "not valid YAML: line "),
    ],
)
def test_a_bad_cluster_file_is_refused_before_any_node_is_touched(
    cluster: Cluster, tmp_path: Path, change: tuple[str | None, str], expected: str
) -> None:
    old, new = change
    path = edited(cluster, tmp_path, old or address_line(cluster), new)
    done = kato("--cluster", str(path), "run", "--", "touch", SENTINEL, check=False)
    assert done.returncode == 2, done.stderr
    assert str(path) in done.stderr and expected in done.stderr
    assert not cluster.host("node1").file(SENTINEL).exists
