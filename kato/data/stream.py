"""How kato runs the node's data program (kato/remote/node_data.py) and reads its answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from kato.remote import program
from kato.transport.base import CommandResult

RESULT = "KATO-RESULT "
# The node's python3 reads the program (its first LENGTH bytes on stdin, with os.read so
# nothing more is taken) and runs it; the rest of stdin is left to the program's children.
LOADER = """import os, sys
n, b = int(sys.argv[1]), b""
while len(b) < n:
    c = os.read(0, n - len(b))
    if not c:
        sys.exit("kato: the data program arrived cut short")
    b += c
sys.argv = ["kato-data-stream", *sys.argv[2:]]
exec(compile(b, "kato-data-stream", "exec"), {"__name__": "__main__"})
"""


@dataclass(frozen=True)
class NodeAnswer:
    """What the node's data program reports at its end."""

    size: int
    sha256: str
    status: int
    error: str


@cache
def source() -> bytes:
    return program("node_data.py")


def argv(*args: str) -> tuple[str, ...]:
    """The command running the data program with `args`; its stdin must start with source()."""
    return ("python3", "-c", LOADER, str(len(source())), *args)


def shown(*args: str) -> tuple[str, ...]:
    """argv as the journal records it: the program's name instead of its loader."""
    return ("kato-data-stream", *args)


def answer(result: CommandResult) -> NodeAnswer | None:
    """The program's report (its last KATO-RESULT line), or None when it never got to it."""
    for line in reversed(result.stderr.splitlines()):
        if line.startswith(RESULT):
            try:
                raw = json.loads(line[len(RESULT) :])
                return NodeAnswer(int(raw["size"]), str(raw["sha256"]), int(raw["status"]),
                                  str(raw["error"]))  # fmt: skip
            except (ValueError, KeyError, TypeError):
                return None
    return None
