"""What interrupted imports left stopped, read from journal entries."""

from __future__ import annotations

from typing import Any

from kato.data.resume import left_stopped


def step(op: str, node: str, role: str, action: str, **extra: Any) -> dict[str, Any]:
    return {"event": "step", "operation": op, "node": node, "role": role, "action": action,
            **extra}  # fmt: skip


def test_a_role_stopped_while_running_and_never_started_is_left_stopped() -> None:
    entries = [
        {"event": "begin", "operation": "a"},
        step("a", "node1", "redis", "stop", was_active=True),
        step("a", "node1", "redis", "start"),
        step("a", "node1", "postgresql", "stop", was_active=True),
        step("a", "node1", "controller", "stop", was_active=False),
    ]
    assert left_stopped(entries, "now") == {("node1", "postgresql"): "a"}


def test_a_later_operation_that_started_it_clears_it_and_ours_is_ignored() -> None:
    entries = [
        step("a", "node1", "postgresql", "stop", was_active=True),
        step("b", "node1", "postgresql", "stop", was_active=False),
        step("b", "node1", "postgresql", "start"),
        step("now", "node2", "redis", "stop", was_active=True),
    ]
    assert left_stopped(entries, "now") == {}


def test_an_operation_that_journaled_the_stop_again_is_read_by_its_last_word() -> None:
    entries = [  # the node found the role stopped since staging: nothing ran, journaled again
        step("a", "node1", "redis", "stop", was_active=True),
        step("a", "node1", "redis", "stop", was_active=False),
        step("a", "node1", "web", "stop", was_active=False),
        step("a", "node1", "web", "stop", was_active=True),
    ]
    assert left_stopped(entries, "now") == {("node1", "web"): "a"}
