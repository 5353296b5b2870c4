"""The upgrade's role-ordered walks on the rollout engine, on a fake cluster: role order,
every carrier at once, the health gate as the engine's verify, one journal, and a failure
named with its node and phase."""

from __future__ import annotations

import pytest

from kato import datadirs
from kato.engine.session import session
from kato.roles import Health, Role
from kato.upgrade import walk
from tests.fakes import FakeCluster

NODES = ["node1", "node2", "node3"]
WEB = Role("web", "serves", 2, ("web.service",), Health(0.3, http="http://x/"), {}, True, {})
DB = Role("db", "stores", 1, ("db.service",), Health(0.3, command=("true",)), {}, False, {})


@pytest.fixture
def fake() -> FakeCluster:
    return FakeCluster(NODES, roles=("web", "db"))


def systemctl(fake: FakeCluster) -> list[tuple[str, ...]]:
    return [argv for argv in fake.ran() if argv[0] == "systemctl" and argv[1] != "is-active"]


def test_start_goes_role_by_role_each_behind_its_gate_on_every_carrier(fake: FakeCluster) -> None:
    with session(fake.cluster, ["kato", "upgrade"], factory=fake.factory) as s:
        walk.start(s, [WEB, DB])
        walk.stop(s, [WEB, DB])
    started = [argv[-1] for argv in systemctl(fake)]
    assert (
        started
        == ["db.service"] * 3 + ["web.service"] * 3 + ["web.service"] * 3 + ["db.service"] * 3
    )  # start in order, stop in reverse
    steps = [e for e in fake.journal if e["event"] == "step"]
    assert {(e["node"], e["step"]) for e in steps} >= {(n, "start db") for n in NODES}
    assert len({e["operation"] for e in fake.journal}) == 1  # one operation, one journal
    assert fake.journal[-1]["result"] == "ok" and fake.lock is None


def test_a_failed_gate_stops_the_walk_naming_the_node_and_the_role(fake: FakeCluster) -> None:
    fake.nodes["node2"].healthy = False
    with (
        pytest.raises(walk.WalkFailed, match="start db failed on node2") as failed,
        session(fake.cluster, ["kato", "upgrade"], factory=fake.factory) as s,
    ):
        walk.start(s, [WEB, DB])
    assert failed.value.failed["node2"].phase == "health"
    assert not any(argv[-1] == "web.service" for argv in systemctl(fake))  # never reached
    assert fake.journal[-1]["result"] in ("failed", "partial") and fake.lock is None


def test_a_tolerated_stop_reports_the_node_and_goes_on(fake: FakeCluster) -> None:
    fake.answers.append(
        lambda node, argv, _: (
            (1, "", "stop failed")
            if node.name == "node3" and argv[:2] == ("systemctl", "stop")
            else None
        )
    )
    with session(fake.cluster, ["kato", "rollback"], factory=fake.factory) as s:
        failed = walk.stop(s, [WEB, DB], tolerate=True)
    assert set(failed) == {"node3"}
    assert sum(1 for argv in systemctl(fake) if argv[1] == "stop") == 6  # both roles tried


def test_activation_passes_each_roles_recorded_data_dirs_to_its_hook() -> None:
    store = Role("store", "keeps", 1, ("store.service",), Health(0.3, tcp=("127.0.0.1", 1)),
                 {"services": "/var/lib/kato/data/services/store", "audit-log": "/var/log/a"},
                 False, {})  # fmt: skip
    where = datadirs.Locations(moved={"store": {"services": "/mnt/ebs/services/store"}})
    plan = walk.activation_plan(("store", "web", "gone"), {"store": store, "web": WEB},
                                {"store": store, "gone": DB}, where)  # fmt: skip
    assert plan["roles"] == {"store": ["store.service"], "web": ["web.service"]}
    assert plan["old_units"] == ["store.service", "db.service"]
    assert plan["env"] == {
        "store": {
            "KATO_DATA_SERVICES": "/mnt/ebs/services/store",
            "KATO_DATA_AUDIT_LOG": "/var/log/a",
        },  # fmt: skip
        "web": {},
    }
