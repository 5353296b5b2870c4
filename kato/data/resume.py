"""What interrupted imports left undone, read from the journal: roles an import stopped while
they ran and never started again (kato was killed, the machine running it died). The next
import starts them again once their data is switched, so a re-run ends as the first run meant
to, not as the interruption left things."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

STOP = "stop"  # the `action` of the journal step written before a role is stopped to switch
START = "start"  # and of the one written once it runs and is healthy again


def left_stopped(entries: Iterable[Mapping[str, Any]], current: str) -> dict[tuple[str, str], str]:
    """(node, role) -> the id of the operation that stopped it while it was active and that
    nobody journaled starting again since (entries oldest first, as the journal holds them).
    An operation's later stop step for the same role overrides its earlier one: the switch
    journals again when the node found the role's state changed before anything stopped."""
    pending: dict[tuple[str, str], str] = {}
    for entry in entries:
        if entry.get("event") != "step" or entry.get("operation") == current:
            continue
        key, operation = (
            (str(entry.get("node")), str(entry.get("role"))),
            str(entry.get("operation")),
        )
        if entry.get("action") == STOP and entry.get("was_active"):
            pending[key] = operation
        elif entry.get("action") == START or (
            entry.get("action") == STOP and pending.get(key) == operation
        ):
            pending.pop(key, None)
    return pending
