"""The node agent: shipped once per node per run, cached on the node by content hash."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kato import facts
from kato.connect import connections
from kato.remote.agent import PROGRAMS, SHIP, NodeAgent
from tests.fakes import FakeCluster


def ships(fake: FakeCluster, node: str) -> int:
    return sum(1 for argv in fake.ran(node) if argv[:3] == ("sh", "-c", SHIP))


def test_shipped_once_per_node_per_run_and_not_again_while_cached() -> None:
    fake = FakeCluster(["node1", "node2", "node3"])
    with connections(fake.cluster, fake.factory) as conns:
        for _ in range(3):
            for node in ("node1", "node2", "node3"):
                facts.node_facts(conns.get(node))
    assert [ships(fake, n) for n in ("node1", "node2", "node3")] == [1, 1, 1]
    agent_calls = [a for a in fake.ran("node1") if a[0] == "python3"]
    assert len(agent_calls) == 4  # the first call found no agent, then 3 that ran
    with connections(fake.cluster, fake.factory) as conns:  # the next run: cached on the node
        facts.node_facts(conns.get("node1"))
    assert ships(fake, "node1") == 1


def test_the_digest_follows_the_content(tmp_path: Path) -> None:
    one = tmp_path / "one.py"
    one.write_text("print(1)\n")
    first = NodeAgent({"one.py": one}, base=str(tmp_path / "agent"))
    assert NodeAgent({"one.py": one}).bundle == first.bundle  # the same bytes every time
    one.write_text("print(2)\n")
    assert NodeAgent({"one.py": one}).digest != first.digest
    assert set(PROGRAMS) == {
        "node_facts.py", "patch_agent.py", "patch_records.py", "safe_write.py", "datadirs.py",
        "treesum.py", "quota.py", "upgrade_agent.py", "node_data.py", "role_cycle.py",
        "node_member.py", "tree_safety.py", "tar_walk.py",
    }  # fmt: skip


def test_the_ship_script_unpacks_under_a_temporary_name_then_renames(tmp_path: Path) -> None:
    agent = NodeAgent(base=str(tmp_path / "var/lib/kato/agent"))
    shipped = Path(agent.directory)
    for _ in range(2):  # the second replaces a broken copy
        done = subprocess.run(
            ("sh", "-c", SHIP, "sh", agent.directory), input=agent.bundle, capture_output=True
        )
        assert done.returncode == 0, done.stderr
        (shipped / "node_facts.py").unlink()
    done = subprocess.run(("sh", "-c", SHIP, "sh", agent.directory), input=agent.bundle)
    assert sorted(p.name for p in shipped.iterdir()) == sorted(PROGRAMS)
    assert list(shipped.parent.iterdir()) == [shipped]  # no temporary left behind
    run = subprocess.run((*agent.argv("node_facts.py", "{}", str(tmp_path)),), capture_output=True)
    assert run.returncode == 0 and b'"format": 1' in run.stdout
