"""The rollout engine on a fake cluster: batches, verify, undo, stop at the first failure,
Ctrl-C, and the per-node report."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from kato import progress
from kato.engine import parallel
from kato.engine.batches import Batching
from kato.engine.report import DONE, FAILED, NOT_REACHED, UNDONE
from kato.engine.rollout import NodeChange, rollout
from kato.engine.session import Session, session
from kato.errors import Interrupted, UsageError
from kato.roles import Health, Role
from tests.fakes import FakeCluster, FakeNode

NODES = ["node1", "node2", "node3", "node4", "node5"]
WEB = Role("web", "serves", 1, ("web.service",), Health(0.3, http="http://x/"), {}, True, {})
WORKER = Role(
    "worker", "works", 2, ("worker.service",), Health(0.3, command=("true",)), {}, False, {}
)


def touching(s: Session, node: str, roles: tuple[Role, ...] = (WEB,)) -> NodeChange:
    """Stage a file, put a marker in place and restart the roles; undo removes the marker."""

    def change() -> int:
        s.transport(node).run(("touch", "/marker"))
        for role in roles:
            s.transport(node).run(("systemctl", "restart", "--", *role.units))
        return 1

    return NodeChange(
        node,
        change,
        stage=lambda: s.transport(node).run(("touch", "/staged")),
        undo=lambda: s.transport(node).run(("rm", "-f", "/marker")),
        restarts=roles,
    )


@pytest.fixture
def fake() -> FakeCluster:
    world = FakeCluster(NODES)
    for node in world.nodes.values():
        node.units = {"web.service": "active", "worker.service": "active"}
    return world


def test_a_failing_verify_on_node2_of_5_undoes_it_and_leaves_the_rest_unreached(
    fake: FakeCluster,
) -> None:
    fake.nodes["node2"].sick_while = "/marker"
    with session(fake.cluster, ["kato", "test"], factory=fake.factory) as s:
        report = rollout(s, [touching(s, n) for n in NODES], Batching(parallel=10))
    assert [r.state for r in report.nodes] == [DONE, UNDONE, NOT_REACHED, NOT_REACHED, NOT_REACHED]
    node2 = report.nodes[1]
    assert node2.phase == "health" and "web not healthy within 0.3s" in node2.message
    assert node2.undo == "undone on this node" and node2.shown == "undone (failed in health)"
    assert "/marker" not in fake.nodes["node2"].files and "/marker" in fake.nodes["node1"].files
    assert all("/staged" in fake.nodes[n].files for n in NODES)  # staged everywhere first
    assert all(not fake.ran(n) or ("touch", "/marker") not in fake.ran(n) for n in NODES[2:])
    assert report.exit_code == 3
    assert [e["event"] for e in fake.journal] == ["begin", "end"]
    assert fake.journal[-1]["result"] == "partial" and fake.lock is None


def test_an_undo_that_fails_is_reported_as_failed_never_hidden(fake: FakeCluster) -> None:
    fake.nodes["node2"].sick_while = "/marker"
    with session(fake.cluster, ["kato", "test"], factory=fake.factory) as s:
        changes = [touching(s, n) for n in NODES]
        changes[1] = NodeChange(
            "node2",
            changes[1].change,
            undo=lambda: s.transport("node2").run(("false",)),
            restarts=(WEB,),
        )
        report = rollout(s, changes, Batching())
    node2 = report.nodes[1]
    assert node2.state == FAILED and node2.shown == "failed in health"
    assert "web not healthy" in node2.message  # the first error, then the undo's
    assert "undoing it failed too" in node2.undo and "false: it failed" in node2.undo
    assert report.exit_code == 3


def test_a_failed_change_without_undo_says_so_and_exit_1_when_alone(fake: FakeCluster) -> None:
    with session(fake.cluster, ["kato", "test"], factory=fake.factory) as s:
        change = NodeChange("node1", lambda: int(bool(s.transport("node1").run(("false",)))))
        report = rollout(s, [change], Batching())
    assert report.nodes[0].state == FAILED and report.nodes[0].phase == "change"
    assert report.nodes[0].undo == "nothing to undo"
    assert report.exit_code == 1 and fake.journal[-1]["result"] == "failed"


def test_an_unreachable_node_alone_is_exit_5(fake: FakeCluster) -> None:
    fake.nodes["node1"].down = True
    with session(fake.cluster, ["kato", "test"], factory=fake.factory) as s:
        fake.nodes["node1"].down = False
        change = touching(s, "node1")
        fake.answers.append(lambda n, argv, _: _down(n) if argv == ("touch", "/marker") else None)
        report = rollout(s, [change], Batching())
    assert report.nodes[0].phase == "change" and report.exit_code == 5


def _down(node: object) -> tuple[int, str, str]:
    from kato.errors import NodeUnreachable

    raise NodeUnreachable("node1", "command", "connection lost")


def test_a_failed_stage_stops_before_any_change(fake: FakeCluster) -> None:
    fake.answers.append(
        lambda n, argv, _: (1, "", "disk full") if n.name == "node3" and "/staged" in argv else None
    )
    with session(fake.cluster, ["kato", "test"], factory=fake.factory) as s:
        report = rollout(s, [touching(s, n) for n in NODES], Batching())
    assert report.nodes[2].state == FAILED and report.nodes[2].phase == "stage"
    assert report.of(NOT_REACHED) == ("node1", "node2", "node4", "node5")
    assert not any("/marker" in n.files for n in fake.nodes.values())


def test_batches_canary_serial_and_serving_roles(fake: FakeCluster) -> None:
    order: list[list[str]] = []
    lock = threading.Lock()
    active: list[str] = []

    def tracked(s: Session, node: str, roles: tuple[Role, ...]) -> NodeChange:
        def change() -> int:
            with lock:
                active.append(node)
                order.append(sorted(active))
            threading.Event().wait(0.05)
            with lock:
                active.remove(node)
            return 1

        return NodeChange(node, change, restarts=roles)

    with session(fake.cluster, ["kato", "test"], factory=fake.factory) as s:
        # restarts of a role serving traffic: one at a time by default
        rollout(s, [tracked(s, n, (WEB,)) for n in NODES], Batching(parallel=10))
        assert max(len(o) for o in order) == 1
        order.clear()
        # restarting nothing goes wide, after the canary alone
        report = rollout(s, [tracked(s, n, ()) for n in NODES], Batching(canary="node3"))
        assert order[0] == ["node3"] and max(len(o) for o in order) > 1
        assert report.exit_code == 0 and set(report.done) == set(NODES)
        order.clear()
        # --serial 5 of 5 serving nodes is capped so one keeps serving
        rollout(s, [tracked(s, n, (WEB,)) for n in NODES], Batching(serial=5))
        assert max(len(o) for o in order) <= 4
        order.clear()
        rollout(s, [tracked(s, n, (WORKER,)) for n in NODES], Batching(serial=2))
        assert max(len(o) for o in order) <= 2
        with pytest.raises(UsageError, match="--canary node9: that node has nothing to change"):
            rollout(s, [tracked(s, n, ()) for n in NODES], Batching(canary="node9"))


def test_ctrl_c_mid_batch_undoes_the_node_in_flight(
    fake: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, heard = threading.Event(), list[str]()
    monkeypatch.setattr(progress, "_notices", [heard.append])  # what the command line shows

    def interrupting(s: Session, node: str) -> NodeChange:
        base = touching(s, node)

        def change() -> int:
            count = base.change()
            if node == "node2":
                started.set()
                os.kill(os.getpid(), signal.SIGINT)  # as the terminal sends Ctrl-C
                threading.Event().wait(0.5)  # the change goes on a little after it
            return count

        return NodeChange(node, change, base.stage, base.undo, restarts=base.restarts)

    with (
        pytest.raises(Interrupted) as caught,
        session(fake.cluster, ["kato", "test"], factory=fake.factory) as s,
    ):
        rollout(s, [interrupting(s, n) for n in NODES], Batching())
    assert started.is_set()
    assert heard == [parallel.INTERRUPTED]  # at once, even with no progress shown
    assert "node1 done, node2 undone (interrupted)" in caught.value.message
    assert "node3 not reached" in caught.value.message
    assert "/marker" in fake.nodes["node1"].files and "/marker" not in fake.nodes["node2"].files
    assert fake.journal[-1]["result"] == "interrupted" and fake.lock is None


def test_all_or_nothing_undoes_every_node_newest_first(fake: FakeCluster) -> None:
    fake.nodes["node3"].sick_while = "/marker"
    undone: list[str] = []
    with session(fake.cluster, ["kato", "test"], factory=fake.factory) as s:

        def change(n: str) -> NodeChange:
            def undo() -> None:
                undone.append(n)
                s.transport(n).run(("rm", "/marker"))

            return NodeChange(
                n, lambda: int(bool(s.transport(n).run(("touch", "/marker")))), undo=undo,
                restarts=(WEB,),
            )  # fmt: skip

        changes = [change(n) for n in NODES]
        report = rollout(s, changes, Batching(), undo_all=True)
    assert undone == ["node3", "node2", "node1"]
    assert [r.state for r in report.nodes][:3] == [UNDONE, UNDONE, UNDONE]
    assert [r.shown for r in report.nodes][:3] == [
        "undone (another node failed)", "undone (another node failed)", "undone (failed in health)"
    ]  # fmt: skip
    assert report.exit_code == 3


def laying(s: Session, node: str) -> NodeChange:
    """Lay /marker on every node first (apply), then restart WEB node by node (change); undo
    removes the marker and restarts WEB again only where it was restarted."""
    restarted: list[str] = []

    def restart() -> None:
        s.transport(node).run(("systemctl", "restart", "--", *WEB.units))

    def change() -> int:
        restarted.append(node)
        restart()
        return 0

    def undo() -> None:
        s.transport(node).run(("rm", "-f", "/marker"))
        if restarted:
            restart()

    return NodeChange(
        node,
        change,
        apply=lambda: int(bool(s.transport(node).run(("touch", "/marker")))),
        undo=undo,
        restarts=(WEB,),
    )


def restarts_of(fake: FakeCluster, node: str) -> int:
    return sum(1 for argv in fake.ran(node) if argv[:2] == ("systemctl", "restart"))


def test_apply_lays_on_every_node_before_the_first_restart(fake: FakeCluster) -> None:
    order: list[str] = []

    def record(node: FakeNode, argv: tuple[str, ...], stdin: bytes | None) -> None:
        order.append(f"{node.name} {argv[0]}")

    fake.answers.append(record)
    with session(fake.cluster, ["kato", "test"], factory=fake.factory) as s:
        report = rollout(s, [laying(s, n) for n in NODES], Batching())
    assert report.done == {n: 1 for n in NODES} and report.exit_code == 0
    touches = [i for i, line in enumerate(order) if line.endswith(" touch")]
    restarts = [i for i, line in enumerate(order) if line.endswith(" systemctl")]
    assert len(touches) == 5 and len(restarts) == 5 and max(touches) < min(restarts)


def test_a_failed_restart_puts_back_the_nodes_applied_but_not_yet_restarted(
    fake: FakeCluster,
) -> None:
    fake.nodes["node2"].sick_while = "/marker"
    with session(fake.cluster, ["kato", "test"], factory=fake.factory) as s:
        report = rollout(s, [laying(s, n) for n in NODES], Batching())
    assert [r.state for r in report.nodes] == [DONE, UNDONE, NOT_REACHED, NOT_REACHED, NOT_REACHED]
    assert "/marker" in fake.nodes["node1"].files
    assert all("/marker" not in fake.nodes[n].files for n in NODES[1:])
    assert [restarts_of(fake, n) for n in NODES] == [1, 2, 0, 0, 0]  # the rest never restarted
    assert all("put back" in r.undo for r in report.nodes[2:])
    assert report.exit_code == 3 and report.not_reached == ("node3", "node4", "node5")


def test_a_failed_apply_puts_back_every_node_and_restarts_none(fake: FakeCluster) -> None:
    fake.answers.append(
        lambda n, argv, _: (
            (1, "", "disk full") if n.name == "node3" and argv[0] == "touch" else None
        )
    )
    with session(fake.cluster, ["kato", "test"], factory=fake.factory) as s:
        report = rollout(s, [laying(s, n) for n in NODES], Batching())
    node3 = report.nodes[2]
    assert node3.state == UNDONE and node3.phase == "change" and "disk full" in node3.message
    assert report.of(NOT_REACHED) == ("node1", "node2", "node4", "node5")
    assert not any("/marker" in n.files for n in fake.nodes.values())
    assert all(restarts_of(fake, n) == 0 for n in NODES)
    assert report.exit_code == 3


def test_putting_back_an_applied_node_that_fails_is_reported_never_hidden(
    fake: FakeCluster,
) -> None:
    fake.nodes["node1"].sick_while = "/marker"
    fake.answers.append(
        lambda n, argv, _: (1, "", "read-only") if n.name == "node4" and argv[0] == "rm" else None
    )
    with session(fake.cluster, ["kato", "test"], factory=fake.factory) as s:
        report = rollout(s, [laying(s, n) for n in NODES], Batching())
    assert report.nodes[0].state == UNDONE
    node4 = report.nodes[3]
    assert node4.state == FAILED and "undoing it failed too" in node4.undo
    assert "read-only" in node4.undo
    assert report.of(NOT_REACHED) == ("node2", "node3", "node5")


def test_ctrl_c_between_two_batches_stops_before_the_next_and_puts_the_applied_back(
    fake: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C that lands while no batch runs (the main thread between two batches) used to
    raise KeyboardInterrupt out of the rollout, leaving nodes applied but never restarted."""
    from kato.engine import rollout as engine

    batches_run: list[list[str]] = []
    real = parallel.in_parallel

    def then_ctrl_c(nodes, work, limit):  # type: ignore[no-untyped-def]
        ran = real(nodes, work, limit)
        if list(nodes) == ["node1"] and not batches_run:
            batches_run.append(list(nodes))
            # as the terminal sends it, once node1's batch has returned to the main thread
            signal.raise_signal(signal.SIGINT)
        return ran

    monkeypatch.setattr(engine, "in_parallel", then_ctrl_c)
    with (
        pytest.raises(Interrupted) as caught,
        session(fake.cluster, ["kato", "test"], factory=fake.factory) as s,
    ):
        rollout(s, [laying(s, n) for n in NODES], Batching())
    assert batches_run == [["node1"]]
    assert "node1 done" in caught.value.message and "node2 not reached" in caught.value.message
    assert restarts_of(fake, "node2") == 0  # the next batch never started
    assert "/marker" in fake.nodes["node1"].files
    assert all("/marker" not in fake.nodes[n].files for n in NODES[1:])  # put back
    assert fake.journal[-1]["result"] == "interrupted" and fake.lock is None
