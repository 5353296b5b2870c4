"""kato start|stop|restart on a fake cluster: each node's command (and, but for stop, its
role's health wait) is one call to the node's role_cycle.py, whose start is retried once
after `reset-failed` when systemd refused it for its start rate limit
(tests/unit/remote/test_role_cycle.py runs that program on a fake systemctl)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kato.errors import ExitCode
from kato.platform.control import control
from kato.remote.agent import AGENT
from tests.fakes import FakeCluster, FakeNode

UNIT = "kato-controller.service"
NODES = ["node1", "node2"]


def cluster() -> tuple[FakeCluster, list[tuple[str, dict[str, Any]]]]:
    """Two nodes running the controller, and the role_cycle.py requests they are sent."""
    fake = FakeCluster(NODES, roles=("controller",))
    sent: list[tuple[str, dict[str, Any]]] = []

    def cycles(node: FakeNode, argv: tuple[str, ...], stdin: bytes | None) -> None:
        if argv[:2] == ("python3", "-S") and argv[2].endswith("/role_cycle.py") and stdin:
            sent.append((node.name, json.loads(stdin)))
        return None  # answered by the fake's own role_cycle

    fake.answers.append(cycles)
    for node in fake.nodes.values():
        node.units[UNIT] = "active"
        node.files[AGENT.directory] = b"shipped"
    return fake, sent


@pytest.mark.parametrize("action", ["start", "restart"])
def test_a_start_or_restart_is_the_node_programs_with_the_roles_health(action: str) -> None:
    fake, sent = cluster()
    outcome = control(fake.cluster, action, ["controller"], None, factory=fake.factory)
    assert outcome.exit_code == ExitCode.OK and sorted(outcome.succeeded) == NODES
    assert sorted(node for node, _ in sent) == NODES  # one call per node
    for _, request in sent:
        assert [c["argv"] for c in request["commands"]] == [["systemctl", action, "--", UNIT]]
        assert list(request["roles"]) == ["controller"]  # the health wait, on the node
    steps = [e for e in fake.journal if e.get("step") == f"{action} controller"]
    assert sorted(str(e["node"]) for e in steps) == NODES  # each still journaled


def test_a_stop_waits_for_no_health() -> None:
    fake, sent = cluster()
    control(fake.cluster, "stop", ["controller"], None, factory=fake.factory)
    assert [request["roles"] for _, request in sent] == [{}, {}]
    assert all(n.units[UNIT] == "inactive" for n in fake.nodes.values())


def test_a_start_the_node_refused_fails_that_node_with_systemds_words() -> None:
    fake, _ = cluster()
    refusal = "Job for kato-controller.service failed: start attempted too often."

    def refuses(node: FakeNode, argv: tuple[str, ...], stdin: bytes | None) -> Any:
        return (
            (1, "", refusal)
            if node.name == "node2" and argv[:2] == ("systemctl", "start")
            else None
        )

    fake.answers.insert(0, refuses)
    outcome = control(fake.cluster, "start", ["controller"], None, factory=fake.factory)
    assert list(outcome.succeeded) == ["node1"] and list(outcome.failed) == ["node2"]
    assert "too often" in outcome.failed["node2"].message
