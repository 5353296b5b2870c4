"""The files the sandbox writes for kato and for people."""

from __future__ import annotations

from kato.sandbox import clusterfile, model


def test_known_hosts_has_one_line_per_node_with_its_own_key() -> None:
    sandbox = model.plan_sandbox("demo", 2, "198.18.7.0/24", image="/img")
    text = clusterfile.known_hosts_text(
        sandbox, {"node1": "ssh-ed25519 AAA1 root@node1", "node2": "ssh-ed25519 AAA2 root@node2"}
    )
    assert text.splitlines() == [
        "198.18.7.11 ssh-ed25519 AAA1 root@node1",
        "198.18.7.12 ssh-ed25519 AAA2 root@node2",
    ]


def test_cluster_document_names_core_nodes_and_ssh_settings() -> None:
    sandbox = model.plan_sandbox("demo", 3, "198.18.7.0/24", image="/img")
    document = clusterfile.cluster_document(sandbox)
    assert document["core"] == "node1"
    assert [n["address"] for n in document["nodes"]] == [  # type: ignore[attr-defined]
        "198.18.7.11",
        "198.18.7.12",
        "198.18.7.13",
    ]
    assert document["ssh"]["known_hosts"].endswith("demo/known_hosts")  # type: ignore[index]


def test_ssh_config_trusts_only_the_written_known_hosts() -> None:
    sandbox = model.plan_sandbox("demo", 1, "198.18.7.0/24", image="/img")
    text = clusterfile.ssh_config_text(sandbox)
    assert "StrictHostKeyChecking yes" in text
    assert f"UserKnownHostsFile {sandbox.home / 'known_hosts'}" in text
