"""Plans: the ordered steps a mutating command will take, built by pure functions from facts,
printed by --dry-run, and applied node by node inside an operation."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from kato.errors import RemoteCommandFailed
from kato.operation import Operation
from kato.transport.base import command_line
from kato.transport.fanout import FanOut, NodeFailure, fan_out
from kato.transport.pool import Connections


@dataclass(frozen=True)
class Step:
    node: str
    description: str
    argv: tuple[str, ...]
    upload: str | None = None  # a local file streamed to the command's stdin
    stdin: str | None = None  # or this text
    prelude: bytes | None = None  # sent before the upload (a program, e.g. safe_write's)

    def shown(self) -> str:
        source = f" < {self.upload}" if self.upload else (" < (text)" if self.stdin else "")
        return f"{self.description}: {command_line(self.argv)}{source}"


@dataclass(frozen=True)
class Plan:
    title: str
    steps: tuple[Step, ...] = field(default=())

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.node for s in self.steps))

    def for_node(self, node: str) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.node == node)

    @property
    def is_empty(self) -> bool:
        return not self.steps


@dataclass(frozen=True)
class PlanOutcome:
    """What applying (or, in a dry run, only planning) a plan gave, node by node."""

    plan: Plan
    dry_run: bool
    succeeded: dict[str, int] = field(default_factory=dict)
    failed: dict[str, NodeFailure] = field(default_factory=dict)


class _Prefixed:
    """Reads `prefix`, then `rest`."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self.prefix, self.rest = prefix, rest

    def read(self, size: int = -1) -> bytes:
        if self.prefix:
            head, self.prefix = self.prefix, b""
            return head
        return self.rest.read(size)


def apply_step(conns: Connections, op: Operation, step: Step) -> None:
    started = time.monotonic()
    transport = conns.get(step.node)
    if step.upload:
        with Path(step.upload).open("rb") as source:
            feed = _Prefixed(step.prelude, source) if step.prelude else source
            result = transport.stream_in(step.argv, feed)  # type: ignore[arg-type]
        if not result.ok:
            raise RemoteCommandFailed(step.node, step.argv, result.status, result.stderr)
    else:
        text = step.stdin.encode() if step.stdin else b""
        transport.run(step.argv, stdin=(step.prelude or b"") + text or None)
    op.step(step.node, step.description, step.argv, "ok", time.monotonic() - started)


def apply(
    plan: Plan, conns: Connections, op: Operation, parallel: int, nodes: Sequence[str] | None = None
) -> FanOut[int]:
    """Each node runs its steps in order; nodes run in parallel. A node stops at its first
    failed step (recorded in the journal) and the others go on."""

    def one(node: str) -> int:
        steps = plan.for_node(node)
        for step in steps:
            try:
                apply_step(conns, op, step)
            except Exception as exc:
                op.step(node, step.description, step.argv, f"failed: {exc}", 0.0)
                raise
        return len(steps)

    return fan_out(list(nodes if nodes is not None else plan.nodes), one, parallel)
