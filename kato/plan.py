"""Plans: the ordered steps a mutating command will take, built by pure functions from facts,
printed by --dry-run, and applied through the rollout engine (kato.engine.steps)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from kato.errors import RemoteCommandFailed, outcome_exit
from kato.operation import Operation
from kato.transport.base import command_line
from kato.transport.fanout import NodeFailure
from kato.transport.pool import Connections

SHORT = 60  # a command this short is shown in the readable plan


@dataclass(frozen=True)
class Step:
    node: str
    description: str
    argv: tuple[str, ...]
    upload: str | None = None  # a local file streamed to the command's stdin
    stdin: str | None = None  # or this text
    item: str = ""  # the plan item it is part of, as a person reads it (default: description)
    prelude: bytes | None = None  # sent before the upload or text (a program: safe_write's)

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

    def readable(self) -> list[str]:
        """One line per node per item (`node2: install router 1.1.0 (12 KiB)`); an item of one
        short command shows it too. `Step.shown()` gives every exact command (--verbose)."""
        lines = []
        for node in self.nodes:
            items: dict[str, list[Step]] = {}
            for step in self.for_node(node):
                items.setdefault(step.item or step.description, []).append(step)
            for item, steps in items.items():
                command = command_line(steps[0].argv)
                short = len(steps) == 1 and not steps[0].upload and not steps[0].stdin
                shown = f" ({command})" if short and len(command) <= SHORT else ""
                lines.append(f"{node}: {item}{shown}")
        return lines


@dataclass(frozen=True)
class PlanOutcome:
    """What applying (or, in a dry run, only planning) a plan gave, node by node."""

    plan: Plan
    dry_run: bool
    succeeded: dict[str, int] = field(default_factory=dict)
    failed: dict[str, NodeFailure] = field(default_factory=dict)
    not_started: tuple[str, ...] = ()  # never reached: the rollout stopped at a failure
    notes: tuple[str, ...] = ()  # lines the user should read (e.g. nodes skipped, and why)

    @property
    def exit_code(self) -> int:
        """The one rule (kato.errors.outcome_exit); a dry run changed nothing: 0."""
        if self.dry_run:
            return 0
        failures = [f.exit_code for f in self.failed.values()]
        return int(outcome_exit(len(self.succeeded), failures, len(self.not_started)))


class Prefixed:
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
            feed = Prefixed(step.prelude, source) if step.prelude else source
            result = transport.stream_in(step.argv, feed)  # type: ignore[arg-type]
        if not result.ok:
            raise RemoteCommandFailed(step.node, step.argv, result.status, result.stderr)
    else:
        text = step.stdin.encode() if step.stdin else b""
        transport.run(step.argv, stdin=(step.prelude or b"") + text or None)
    op.step(step.node, step.description, step.argv, "ok", time.monotonic() - started)
