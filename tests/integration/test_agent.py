"""The node agent on real nodes: shipped once per node per run, then cached by content hash;
`kato status` costs one agent call per node."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, kato

pytestmark = pytest.mark.integration
NODES = ("node1", "node2", "node3")
SHIPPED = re.compile(r"^kato: (node\d): shipping the node agent ([0-9a-f]{16})$", re.MULTILINE)


def on(cluster: Cluster, *args: str) -> tuple[str, list[tuple[str, str]]]:
    done = kato("--debug", "--cluster", str(cluster.home / "cluster.yaml"), *args, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout, SHIPPED.findall(done.stderr)


def forget_the_agent(cluster: Cluster) -> None:
    for node in NODES:
        assert cluster.ssh(node, "rm -rf /var/lib/kato/agent").returncode == 0


def test_shipped_once_per_node_per_run_then_cached(cluster: Cluster) -> None:
    forget_the_agent(cluster)
    # a rolling restart reads every node's role definitions (the release each runs), then asks
    # every router node about its health several times over: still one shipment per node
    _, shipped = on(cluster, "restart", "--role", "router")
    assert sorted(n for n, _ in shipped) == list(NODES)
    digest = shipped[0][1]
    assert cluster.host("node2").file(f"/var/lib/kato/agent/{digest}/node_facts.py").is_file
    listing = cluster.host("node2").check_output("ls -a /var/lib/kato/agent")
    assert listing.split() == [".", "..", digest]  # no temporary left behind
    _, again = on(cluster, "status")
    assert again == []  # every node has it: cached
    cluster.ssh("node1", "rm -rf /var/lib/kato/agent")
    _, third = on(cluster, "status", "--json")
    assert [n for n, _ in third] == ["node1"]  # only where it went missing


def test_a_broken_bundle_on_a_node_is_shipped_again(cluster: Cluster) -> None:
    forget_the_agent(cluster)
    on(cluster, "status")
    cluster.ssh("node2", "rm -f /var/lib/kato/agent/*/node_facts.py")
    out, shipped = on(cluster, "status", "--json")
    assert [n for n, _ in shipped] == ["node2"] and '"health": "ok"' in out


def test_data_export_runs_the_data_program_from_the_cached_agent(
    cluster: Cluster, tmp_path: Path
) -> None:
    forget_the_agent(cluster)
    _, shipped = on(cluster, "data", "export", str(tmp_path / "a.tar.zst"), "--role", "redis")
    # only node1 carries redis (and is the core node): the others are not even asked; its
    # one preparation call shipped the agent, and the data program streams from that same
    # bundle: nothing is sent again before the stream
    assert [n for n, _ in shipped] == ["node1"]
    digest = shipped[0][1]
    assert cluster.host("node1").file(f"/var/lib/kato/agent/{digest}/node_data.py").is_file
    _, again = on(cluster, "data", "export", str(tmp_path / "b.tar.zst"), "--role", "redis")
    assert again == []  # cached on the node
