"""kato/relocate/quotas.py: what a failure of the node's quota program means depends on when it
happens. Before any data moves a refusal (exit 3) moves nothing; once the move is under way,
a failure limiting the apps (exit 4: an app vanished, a limit failed) is a failed step, never
reported as "nothing was moved"."""

from __future__ import annotations

from typing import Any

import pytest

from kato.errors import ExitCode, PreflightRefused
from kato.progress import SilentProgress
from kato.relocate import quotas
from kato.relocate.facts import PathInfo, ProgramFailed
from kato.relocate.steps import NodeRun, RelocationFailed
from kato.relocate.targets import Target
from kato.roles import Health, Role

DEA = Role("dea", "runs apps", 3, ("kato-dea.service",), Health(1, tcp=("127.0.0.1", 9000)),
           {"containers": "/var/lib/kato/data/containers"}, True, {})  # fmt: skip
WHERE = PathInfo("/mnt/ebs/c", "dir", "btrfs", "/mnt/ebs", 2, 1 << 30, 1 << 31)


class Node:
    node = "node1"


class Journal:
    def __init__(self) -> None:
        self.steps: list[tuple[str, str]] = []

    def step(self, node: str, what: str, argv: Any, outcome: str, seconds: float) -> None:
        self.steps.append((what, outcome))


def failing(status: int, line: str) -> Any:
    def run(transport: Any, name: str, *args: str, timeout: float = 0) -> dict[str, Any]:
        raise ProgramFailed(transport.node, name, args, status, line)

    return run


def test_a_refusal_before_the_move_says_nothing_was_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quotas, "run_program", failing(3, "quota: btrfs quota enable: no"))
    with pytest.raises(PreflightRefused) as caught:
        quotas.enable(Node(), Journal(), WHERE, SilentProgress())  # type: ignore[arg-type]
    assert "node1: quotas cannot be set up: btrfs quota enable: no" in caught.value.message
    assert caught.value.hint and "nothing was moved" in caught.value.hint


@pytest.mark.parametrize("status", [3, 4])
def test_a_failure_limiting_the_apps_mid_move_is_a_failed_step(
    monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    line = (
        "quota: limiting the apps stopped: app /mnt/ebs/c/dea/a1: it vanished (no such directory)"
    )
    monkeypatch.setattr(quotas, "run_program", failing(status, line))
    target = Target("node1", DEA, "containers", "/var/lib/kato/data/containers",
                    "/var/lib/kato/data/containers", "/mnt/ebs/c/dea")  # fmt: skip
    journal = Journal()
    with pytest.raises(RelocationFailed) as caught:
        quotas.limit_apps(Node(), journal, WHERE, NodeRun("node1", (target,)), 1 << 30)  # type: ignore[arg-type]
    said = caught.value.message
    assert said.startswith("limit each app under /mnt/ebs/c/dea to 1073741824 bytes failed:")
    assert "app /mnt/ebs/c/dea/a1: it vanished" in said and "nothing was moved" not in said
    assert not isinstance(caught.value, PreflightRefused)
    assert caught.value.exit_code == ExitCode.FAILED
    assert journal.steps == [(f"limit each app under /mnt/ebs/c/dea to {1 << 30} bytes",
                              f"exit {status}")]  # fmt: skip
