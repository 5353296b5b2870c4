"""How kato runs the node's data program (kato/remote/node_data.py, part of the node agent)
and reads its answer."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kato.remote.agent import AGENT
from kato.transport.base import CommandResult, Transport

RESULT = "KATO-RESULT "
PROGRAM = "node_data.py"


@dataclass(frozen=True)
class NodeAnswer:
    """What the node's data program reports at its end."""

    size: int
    sha256: str
    status: int
    error: str
    entry: str | None = None  # import: the tree's entry its check refused
    invalid: bool = False  # import: the member failed its check (not tar, not the disk)
    units: dict[str, str] | None = None  # import: the states of the units it was asked about


def ready(transport: Transport) -> None:
    """The node has the agent (shipped at most once per node per run, cached by content
    hash): a data stream cannot be replayed, so it is made sure of before one starts."""
    AGENT.ensure(transport)


def argv(*args: str) -> tuple[str, ...]:
    """The command running the data program with `args` (on a node that is ready())."""
    return AGENT.argv(PROGRAM, *args)


def shown(*args: str) -> tuple[str, ...]:
    """argv as the journal records it: the program's name instead of its loader."""
    return ("kato-data-stream", *args)


def answer(result: CommandResult) -> NodeAnswer | None:
    """The program's report (its last KATO-RESULT line), or None when it never got to it."""
    for line in reversed(result.stderr.splitlines()):
        if line.startswith(RESULT):
            try:
                raw = json.loads(line[len(RESULT) :])
                entry, units = raw.get("entry"), raw.get("units")
                return NodeAnswer(int(raw["size"]), str(raw["sha256"]), int(raw["status"]),
                                  str(raw["error"]), None if entry is None else str(entry),
                                  raw.get("invalid") is True,
                                  {str(u): str(s) for u, s in units.items()}
                                  if isinstance(units, dict) else None)  # fmt: skip
            except (ValueError, KeyError, TypeError):
                return None
    return None
