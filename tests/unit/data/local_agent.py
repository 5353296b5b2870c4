"""The node agent's data program run on this machine, for fakes of nodes in the data tests."""

from __future__ import annotations

import sys
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
