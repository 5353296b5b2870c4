"""The node agent's data program run on this machine, for fakes of nodes in the data tests."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from kato.data import stream
from kato.transport.base import CommandResult

PROGRAM = Path(stream.__file__).parent.parent / "remote" / stream.PROGRAM


def here(argv: Sequence[str]) -> tuple[str, ...]:
    """The agent's argv for a node (python3 -S AGENT/node_data.py ARGS) as run here."""
    assert tuple(argv[:2]) == ("python3", "-S") and argv[2].endswith("/" + stream.PROGRAM)
    return (sys.executable, "-S", str(PROGRAM), *argv[3:])


class AgentThere:
    """A fake node that has the agent already (AGENT.ensure asks with `ls`)."""

    node: str

    def run(self, argv: Sequence[str], **_: object) -> CommandResult:
        assert argv[0] == "ls", argv
        return CommandResult(self.node, tuple(argv), 0, "", "", 0.0)


class Concurrency:
    """Counts the nodes' streams in flight (`with concurrency:` around each). Each stream
    waits at its start, up to `patience` seconds, until `limit` are in flight or every one has
    begun, then up to `grace` seconds more for one too many: a bound that lets too many
    through is seen (`over`) rather than missed because the work was quick. A right bound
    passes whatever the timing; the waits only end early."""

    def __init__(self, limit: int, total: int, patience: float = 10.0, grace: float = 0.1) -> None:
        self.limit, self.total, self.patience, self.grace = limit, total, patience, grace
        self.cond = threading.Condition()
        self.active = self.entered = self.peak = 0
        self.over = False

    def __enter__(self) -> None:
        with self.cond:
            self.active += 1
            self.entered += 1
            self.peak = max(self.peak, self.active)
            self.over = self.over or self.active > self.limit
            self.cond.notify_all()
            self.cond.wait_for(
                lambda: self.active >= self.limit or self.entered >= self.total, self.patience
            )
            self.cond.wait_for(lambda: self.active > self.limit, self.grace)

    def __exit__(self, *_: object) -> None:
        with self.cond:
            self.active -= 1
            self.cond.notify_all()
