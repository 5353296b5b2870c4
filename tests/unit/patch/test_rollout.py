"""patch install's restarts on a fake cluster: a node's restarts and its health gate are one
agent call (role_cycle.py), each restart still journaled; a role unhealthy at its deadline
fails that node in health with today's message, and the node is reverted and restarted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

from kato.engine.batches import Batching
from kato.engine.report import DONE, HEALTH, NOT_REACHED, UNDONE
from kato.engine.rollout import rollout
from kato.engine.session import session
from kato.patch.rollout import NodeWork, node_change, roll
from kato.plan import Step
from kato.roles import Health, Role
from kato.transport.base import CommandResult
from tests.fakes import FakeCluster, FakeNode, FakeTransport

WEB = Role("web", "serves", 1, ("web.service",), Health(0.3, http="http://x/"), {}, True, {})
NODES = ["node1", "node2", "node3"]
RESTART = ("systemctl", "restart")


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


class Opening(FakeTransport):
    """Records when each command's session opens, before its input is read (a standby's
    request comes later), among the fake's calls."""

    def run(self, argv: Sequence[str], **kw: Any) -> CommandResult:
        self.world.calls.append((self.node, ("opened", *argv)))
        return super().run(argv, **kw)

    def stream_in(self, argv: Sequence[str], source: BinaryIO, **kw: Any) -> CommandResult:
        self.world.calls.append((self.node, ("opened", *argv)))
        return FakeTransport.run(self, argv, stdin=source.read(), check=False)


def opening(fake: FakeCluster) -> Callable[..., Opening]:
    return lambda node, *_: Opening(node, fake)


def test_rolling_a_node_opens_no_session_on_it_the_cycles_wait_there_from_the_apply() -> None:
    fake = fake_cluster()
    with session(fake.cluster, ["kato", "patch"], factory=opening(fake)) as s:
        done, failed, rest = roll(s, [work(n) for n in NODES])
    assert set(done) == set(NODES) and not failed and not rest
    first_restart = next(i for i, (_, a) in enumerate(fake.calls) if a[:2] == RESTART)
    for node in NODES:  # (the core's lock and journal calls, `python3 -c`, aside)
        opened = [
            i
            for i, (n, a) in enumerate(fake.calls)
            if n == node and a[0] == "opened" and a[1:3] != ("python3", "-c")
        ]
        turn = next(i for i, (n, a) in enumerate(fake.calls) if n == node and a[:2] == RESTART)
        # every session on the node opened before the first node's restart (in the apply),
        # none in its turn: the turn is one request down the channel opened then
        assert opened and max(opened) < first_restart <= turn
    assert [cycles(fake, n) for n in NODES] == [1, 1, 1]


def test_a_node_never_reached_has_its_waiting_cycle_cancelled_and_restarts_nothing() -> None:
    fake = fake_cluster()
    fake.nodes["node2"].sick_while = "/patched"
    with session(fake.cluster, ["kato", "patch"], factory=opening(fake)) as s:
        done, failed, rest = roll(s, [work(n) for n in NODES])
    assert list(done) == ["node1"] and list(failed) == ["node2"] and rest == ("node3",)
    assert not [a for a in fake.ran("node3") if a[:2] == RESTART]
    assert "/patched" not in fake.nodes["node3"].files  # applied, then put back


def test_a_waiting_cycle_that_gives_no_answer_is_replaced_by_the_ordinary_call() -> None:
    fake = fake_cluster()

    def broken(node: FakeNode, argv: tuple[str, ...], stdin: bytes | None) -> Any:
        return (1, "", "python3: it died") if "--wait" in argv else None

    fake.answers.append(broken)
    with session(fake.cluster, ["kato", "patch"], factory=fake.factory) as s:
        done, failed, rest = roll(s, [work(n) for n in NODES])
    assert set(done) == set(NODES) and not failed and not rest
    assert [cycles(fake, n) for n in NODES] == [2, 2, 2]  # the standby, then the call
