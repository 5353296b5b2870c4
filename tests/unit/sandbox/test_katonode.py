"""kato on the sandbox's core node: the cache key and the cluster file it gets there."""

from __future__ import annotations

import shutil
from pathlib import Path

from kato import config
from kato.sandbox import katonode, model


def _checkout(tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    (checkout / "kato").mkdir(parents=True)
    (checkout / "roles" / "redis").mkdir(parents=True)
    (checkout / "kato" / "__init__.py").write_text('"""kato."""\n')
    (checkout / "roles" / "redis" / "role.yaml").write_text("name: redis\n")
    (checkout / "pyproject.toml").write_text("[project]\nname = 'kato'\n")
    (checkout / "README.md").write_text("# kato\n")
    return checkout


def test_the_key_changes_with_the_source_and_ignores_bytecode(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    first = katonode.source_key(checkout)
    (checkout / "kato" / "__pycache__").mkdir()
    (checkout / "kato" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert katonode.source_key(checkout) == first
    (checkout / "roles" / "redis" / "role.yaml").write_text("name: redis\nunits: []\n")
    second = katonode.source_key(checkout)
    assert second != first
    (checkout / "pyproject.toml").write_text("[project]\nname = 'kato'\nversion = '2'\n")
    assert katonode.source_key(checkout) not in (first, second)


def test_the_key_depends_on_file_names_too(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    first = katonode.source_key(checkout)
    shutil.move(checkout / "kato" / "__init__.py", checkout / "kato" / "other.py")
    assert katonode.source_key(checkout) != first


def test_the_core_nodes_cluster_file_uses_its_own_key_and_known_hosts() -> None:
    sandbox = model.plan_sandbox("demo", 3, "198.18.7.0/24", image="/img")
    document = katonode.node_cluster_document(sandbox)
    cluster = config.parse(document, "/etc/kato/cluster.yaml")
    assert cluster.ssh.identity_file == "/etc/kato/id_ed25519"
    assert cluster.ssh.known_hosts == "/etc/kato/known_hosts"
    assert cluster.releases is None
    assert cluster.core == "node1"
    assert [n.address for n in cluster.nodes] == ["198.18.7.11", "198.18.7.12", "198.18.7.13"]


def test_the_wrapper_runs_the_installed_tree_with_its_roles() -> None:
    # a script like pip's console scripts: kato sees its own path as sys.argv[0] (cron lines)
    assert katonode.WRAPPER.startswith("#!/usr/bin/python3\n")
    assert 'sys.path.insert(0, "/opt/kato/site")' in katonode.WRAPPER
    assert "from kato.cli.start import main" in katonode.WRAPPER
    assert "/opt/kato/roles" in katonode.WRAPPER
