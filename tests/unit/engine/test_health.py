"""The one health wait on a fake cluster: it asks soon after a restart, then less often."""

from __future__ import annotations

from kato.connect import connections
from kato.engine.health import wait_healthy
from kato.roles import Health, Role
from tests.fakes import FakeCluster

WEB = Role("web", "serves", 1, ("web.service",), Health(5.0, http="http://x/"), {}, True, {})


def test_the_wait_polls_soon_then_backs_off_to_half_a_second() -> None:
    fake = FakeCluster(["node1"])
    fake.nodes["node1"].units = {"web.service": "active"}
    fake.nodes["node1"].sick_while = "/starting"
    fake.nodes["node1"].files["/starting"] = b""
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 6:  # healthy from the seventh poll on
            del fake.nodes["node1"].files["/starting"]

    with connections(fake.cluster, fake.factory) as conns:
        wait_healthy(conns, "node1", (WEB,), sleep=sleep)
    assert slept == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
