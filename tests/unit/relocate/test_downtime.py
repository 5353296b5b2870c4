"""kato/relocate/downtime.py on a fake node: the flush, the switch and the start go to the
node in one call, in that order, each with its journal line; the first that fails stops the
rest and is named; the roles' health comes back with the same answer."""

from __future__ import annotations

from typing import Any

import pytest

from kato.engine.cycle import HealthAnswer
from kato.progress import SilentProgress
from kato.relocate import downtime
from kato.relocate.steps import NodeRun, RelocationFailed
from kato.relocate.targets import Target
from kato.roles import Health, Role
from tests.fakes import FakeCluster, FakeTransport

FS = Role("filesystem", "droplets", 4, ("kato-filesystem.service",),
          Health(1, tcp=("127.0.0.1", 8182)), {"droplets": "/var/lib/kato/data/droplets"},
          True, {})  # fmt: skip
TARGET = Target("node1", FS, "droplets", "/var/lib/kato/data/droplets",
                "/var/lib/kato/data/droplets", "/mnt/ebs/d/filesystem")  # fmt: skip


class Journal:
    def __init__(self) -> None:
        self.steps: list[tuple[str, str]] = []

    def step(self, node: str, what: str, argv: Any, outcome: str, seconds: float) -> None:
        self.steps.append((what, outcome))


def test_flush_switch_and_start_are_one_call_and_each_is_journaled() -> None:
    world = FakeCluster(["node1"], roles=("filesystem",))
    t, journal = FakeTransport("node1", world), Journal()
    health = HealthAnswer(None, "node1", (FS,))  # type: ignore[arg-type]  # never asked here
    downtime.switch_and_start(t, journal, NodeRun("node1", (TARGET,)), SilentProgress(), health)  # type: ignore[arg-type]
    assert journal.steps == [
        ("flush /mnt/ebs/d/filesystem to disk", "ok"),
        ("switch filesystem droplets to /mnt/ebs/d/filesystem", "ok"),
        ("start filesystem", "ok"),
    ]
    ran = world.ran("node1")
    assert ran[-3][:3] == ("sync", "-f", "--")
    assert ran[-2][-6:] == ("record", "filesystem", "droplets", "/var/lib/kato/data/droplets",
                            "/mnt/ebs/d/filesystem", '["kato-filesystem.service"]')  # fmt: skip
    assert ran[-1] == ("systemctl", "start", "--", "kato-filesystem.service")
    assert world.nodes["node1"].units["kato-filesystem.service"] == "active"
    health()  # the node's own answer: healthy, no poll from here


def test_the_first_failure_stops_the_rest_and_is_named() -> None:
    world = FakeCluster(["node1"], roles=("filesystem",))

    def full(node: Any, argv: tuple[str, ...], stdin: bytes | None) -> Any:
        return (
            (1, "", "sync: error syncing: No space left on device") if argv[0] == "sync" else None
        )

    world.answers.append(full)
    t, journal = FakeTransport("node1", world), Journal()
    health = HealthAnswer(None, "node1", (FS,))  # type: ignore[arg-type]
    with pytest.raises(RelocationFailed) as caught:
        downtime.switch_and_start(t, journal, NodeRun("node1", (TARGET,)), SilentProgress(),  # type: ignore[arg-type]
                                  health)  # fmt: skip
    assert caught.value.message == (
        "flush /mnt/ebs/d/filesystem to disk failed: sync: error syncing: No space left on device"
    )
    assert journal.steps == [("flush /mnt/ebs/d/filesystem to disk", "exit 1")]
    assert not any(argv[0] == "systemctl" for argv in world.ran("node1"))


def test_stop_stops_the_roles_then_notes_it_in_the_record() -> None:
    world = FakeCluster(["node1"], roles=("filesystem",))
    world.nodes["node1"].units["kato-filesystem.service"] = "active"
    t, journal = FakeTransport("node1", world), Journal()
    downtime.stop(t, journal, NodeRun("node1", (TARGET,)), SilentProgress())  # type: ignore[arg-type]
    assert journal.steps == [("stop filesystem", "ok"),
                             ("note filesystem droplets stopped", "ok")]  # fmt: skip
    assert world.ran("node1")[-1][-5:] == ("moving", "filesystem", "droplets",
                                           "/mnt/ebs/d/filesystem", "stopped")  # fmt: skip
    assert world.nodes["node1"].units["kato-filesystem.service"] == "inactive"
