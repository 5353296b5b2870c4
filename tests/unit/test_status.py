"""`kato status` on a fake cluster: one round trip per node, the lock with the core's."""

from __future__ import annotations

import time

from kato.remote.agent import AGENT
from kato.status import status
from tests.fakes import FakeCluster


def test_one_agent_call_per_node_once_the_agent_is_there() -> None:
    fake = FakeCluster(["node1", "node2", "node3"], roles=("router",))
    for node in fake.nodes.values():
        node.files[AGENT.directory] = b"shipped by an earlier run"
        node.units = {"kato-router.service": "active"}
    fake.nodes["node3"].units = {}
    found = status(fake.cluster, factory=fake.factory)
    assert {n: len(fake.ran(n)) for n in ("node1", "node2", "node3")} == {
        "node1": 1,
        "node2": 1,
        "node3": 1,
    }
    assert [r.health for n in found.nodes for r in n.roles] == ["ok", "ok", "failing: not running"]
    assert found.exit_code == 1 and found.lock is None and found.lock_error is None


def test_a_live_lock_is_shown_and_an_expired_one_is_not() -> None:
    fake = FakeCluster(["node1", "node2"], roles=())
    fake.answers.append(
        lambda node, argv, _: (0, LOCKED, "") if "node_facts.py" in argv[2] else None
    )
    found = status(fake.cluster, factory=fake.factory)
    assert found.lock is not None and found.lock["owner"] == "me@core"
    assert found.lock["started_at"].startswith("20")


LOCKED = (
    '{"format": 1, "boot_id": "b", "version": "1.0.0", "now": %f, "units": {}, "health": {}, '
    '"lock": {"now": %f, "record": {"id": "x", "owner": "me@core", "heartbeat": %f, '
    '"started": %f, "ttl": 60}}}'
) % ((time.time(),) * 4)
