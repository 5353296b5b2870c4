"""patch install's restarts on a fake cluster: a node's restarts and its health gate are one
agent call (role_cycle.py), each restart still journaled; a role unhealthy at its deadline
fails that node in health with today's message, and the node is reverted and restarted."""

from __future__ import annotations

from kato.engine.batches import Batching
from kato.engine.report import DONE, HEALTH, NOT_REACHED, UNDONE
from kato.engine.rollout import rollout
from kato.engine.session import session
from kato.patch.rollout import NodeWork, node_change, roll
from kato.plan import Step
from kato.roles import Health, Role
from tests.fakes import FakeCluster

WEB = Role("web", "serves", 1, ("web.service",), Health(0.3, http="http://x/"), {}, True, {})
NODES = ["node1", "node2", "node3"]


def work(node: str) -> NodeWork:
    apply = Step(node, "apply fix", ("touch", "/patched"))
    revert = Step(node, "revert fix", ("rm", "/patched"))
    return NodeWork(node, (), (apply,), (revert,), (WEB,))


def cycles(fake: FakeCluster, node: str) -> int:
    return sum(1 for argv in fake.ran(node) if argv[0] == "python3" and "role_cycle.py" in argv[2])


def fake_cluster() -> FakeCluster:
    fake = FakeCluster(NODES)
    for node in fake.nodes.values():
        node.units = {"web.service": "active"}
    return fake


def test_each_node_restarts_and_waits_in_one_call_and_journals_the_restart() -> None:
    fake = fake_cluster()
    with session(fake.cluster, ["kato", "patch"], factory=fake.factory) as s:
        done, failed, rest = roll(s, [work(n) for n in NODES])
    assert set(done) == set(NODES) and not failed and not rest
    assert [cycles(fake, n) for n in NODES] == [1, 1, 1]
    # the node's own health wait answered: no facts polls over SSH after the restart
    assert not [a for a in fake.ran() if a[0] == "python3" and "node_facts.py" in a[2]]
    restarts = [e for e in fake.journal if e.get("step") == "restart web"]
    assert [e["node"] for e in restarts] == NODES
    assert all(e["argv"] == ["systemctl", "restart", "--", "web.service"] for e in restarts)


def test_a_node_late_to_health_fails_in_health_and_is_reverted() -> None:
    fake = fake_cluster()
    fake.nodes["node2"].sick_while = "/patched"
    with session(fake.cluster, ["kato", "patch"], factory=fake.factory) as s:
        changes = [node_change(s, work(n)) for n in NODES]
        report = rollout(s, changes, Batching(parallel=10))
    assert [r.state for r in report.nodes] == [DONE, UNDONE, NOT_REACHED]
    node2 = report.nodes[1]
    assert node2.phase == HEALTH
    assert node2.message == "web not healthy within 0.3s: HTTP 503"
    assert "/patched" not in fake.nodes["node2"].files  # reverted
    assert cycles(fake, "node2") == 2  # the restart, then the restart after the revert
