"""How a rollout cuts its nodes into batches: a canary alone first, then K at a time. Pure.

The batch size is `--serial K` when given; else 1 when the change restarts any role (restarts
stay rolling, like BOSH's max-in-flight 1), else `--parallel` (a change that restarts nothing
goes wide). Whatever the size, a role that serves traffic is never restarted on all the nodes
of this rollout that carry it at once (when it has two or more).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kato.errors import UsageError
from kato.roles import Role


@dataclass(frozen=True)
class Batching:
    """The rollout options every command that changes nodes shares."""

    parallel: int = 10  # at most this many nodes change at once
    serial: int | None = None  # K nodes per batch (--serial K)
    canary: str | None = None  # this node first, alone (--canary NODE)

    def __post_init__(self) -> None:
        if self.serial is not None and self.serial < 1:
            raise UsageError(f"--serial must be at least 1, not {self.serial}")
        if self.parallel < 1:
            raise UsageError(f"--parallel must be at least 1, not {self.parallel}")


def batch_size(batching: Batching, restarts: Sequence[tuple[str, Sequence[Role]]]) -> int:
    """The size of every batch after the canary; `restarts` is (node, roles it restarts)."""
    restarting = any(roles for _, roles in restarts)
    size = batching.serial or (1 if restarting else batching.parallel)
    carriers: dict[str, int] = {}
    for _, roles in restarts:
        for role in roles:
            if role.serves_during_upgrade:
                carriers[role.name] = carriers.get(role.name, 0) + 1
    for count in carriers.values():
        if count >= 2:
            size = min(size, count - 1)
    return max(1, size)


def cut(
    batching: Batching, restarts: Sequence[tuple[str, Sequence[Role]]]
) -> list[tuple[str, ...]]:
    """The nodes in batches, in the given order with the canary (if any) first and alone."""
    order = [node for node, _ in restarts]
    first: list[tuple[str, ...]] = []
    if batching.canary is not None:
        if batching.canary not in order:
            raise UsageError(
                f"--canary {batching.canary}: that node has nothing to change",
                hint=f"nodes this command changes: {', '.join(order) or 'none'}",
            )
        order.remove(batching.canary)
        first = [(batching.canary,)]
    size = batch_size(batching, restarts)
    return first + [tuple(order[i : i + size]) for i in range(0, len(order), size)]
