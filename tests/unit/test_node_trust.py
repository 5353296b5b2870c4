"""`kato node trust --from-known-hosts`: the nodes' keys and the jump hosts' on the way."""

from __future__ import annotations

from pathlib import Path

from kato import config, node_trust

KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIPbpETJBwJOmdN5myCs04eQIMQg72Nmq"


def _key(n: int) -> str:
    return KEY[:-2] + f"{n:02d}"


def test_the_jump_hosts_keys_come_with_the_nodes(tmp_path: Path) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        "Host bastion\n  HostName 10.0.0.9\n"
        "Host node*\n  User admin\n  ProxyJump bastion\n"
        "Host node1\n  HostName 10.0.0.11\nHost node2\n  HostName 10.0.0.12\n"
    )
    known = tmp_path / "theirs"
    known.write_text("".join(f"10.0.0.{n} ssh-ed25519 {_key(n)}\n" for n in (9, 11, 12)))
    cluster = config.parse(
        {"name": "c", "core": "node1",
         "ssh": {"config": str(ssh_config), "known_hosts": str(tmp_path / "known_hosts")},
         "nodes": [{"name": "node1", "address": "node1"}, {"name": "node2", "address": "node2"}]},
        str(tmp_path / "cluster.yaml"),
    )  # fmt: skip
    found = node_trust.from_known_hosts(cluster, cluster.nodes, known, dry_run=True)
    assert [(k.node, k.hostname) for k in found.keys] == [
        ("bastion (jump host)", "10.0.0.9"), ("node1", "10.0.0.11"), ("node2", "10.0.0.12")
    ]  # fmt: skip
    assert not found.failed and not (tmp_path / "known_hosts").exists()
    known.write_text(f"10.0.0.11 ssh-ed25519 {_key(11)}\n")
    partial = node_trust.from_known_hosts(cluster, cluster.nodes[:1], known, dry_run=True)
    assert [f.node for f in partial.failed] == ["bastion (jump host)"]
    assert partial.failed[0].message == f"{known} has no key for 10.0.0.9"
