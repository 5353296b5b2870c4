"""`kato status` on a fake cluster: one round trip per node, the lock with the core's."""

from __future__ import annotations

import json
import time

from kato.remote.agent import AGENT
from kato.status import ClusterStatus, status
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


def test_a_live_lock_is_shown_as_held() -> None:
    found = status_with_lock(heartbeat_age=1)
    assert found.lock is not None and found.lock["owner"] == "me@core"
    assert str(found.lock["started_at"]).startswith("20")
    assert found.lock_expired is None


def test_an_expired_lock_is_not_held_but_its_record_is_shown() -> None:
    found = status_with_lock(heartbeat_age=61)  # older than its TTL (60 s)
    assert found.lock is None
    assert found.lock_expired is not None and found.lock_expired["id"] == "x"
    assert str(found.lock_expired["heartbeat_at"]).startswith("20")


def status_with_lock(heartbeat_age: float) -> ClusterStatus:
    """Status of a two-node cluster whose core node answers with a lock record whose last
    heartbeat was `heartbeat_age` seconds ago (by the core node's clock)."""
    now = time.time()
    beat = now - heartbeat_age
    record = {"id": "x", "owner": "me@core", "heartbeat": beat, "started": beat, "ttl": 60}
    locked = json.dumps(
        {"format": 1, "boot_id": "b", "version": "1.0.0", "now": now, "units": {},
         "health": {}, "lock": {"now": now, "record": record}}
    )  # fmt: skip
    fake = FakeCluster(["node1", "node2"], roles=())
    fake.answers.append(
        lambda node, argv, _: (0, locked, "") if "node_facts.py" in argv[2] else None
    )
    return status(fake.cluster, factory=fake.factory)
