"""The operation journal: JSON Lines on the core node (/var/log/kato/journal.jsonl).

One line per event: an operation begins, each step's result, the operation ends. Secrets in
argv are masked before anything is written.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from kato.remote import layout, safe_write
from kato.transport.base import Transport
from kato.transport.pool import Connections

JOURNAL_PATH = layout.JOURNAL
FORMAT = 1
SECRET_OPTION = re.compile(r"\A--?[\w-]*(pass|secret|token|key)[\w-]*\Z", re.IGNORECASE)
# DOTALL and \Z: a value with a newline in it is a secret all the same
SECRET_ASSIGNMENT = re.compile(
    r"\A([\w.-]*(pass|secret|token|key)[\w.-]*)=.*\Z", re.IGNORECASE | re.DOTALL
)


def mask(argv: Sequence[str]) -> list[str]:
    """argv with the values of secret-looking options and assignments replaced by ***."""
    masked: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            masked.append("***")
            hide_next = False
        elif "=" in arg and arg.startswith("-") and SECRET_OPTION.match(arg.split("=", 1)[0]):
            masked.append(arg.split("=", 1)[0] + "=***")
        elif SECRET_OPTION.match(arg):
            masked.append(arg)
            hide_next = True
        elif SECRET_ASSIGNMENT.match(arg):
            masked.append(SECRET_ASSIGNMENT.sub(r"\1=***", arg))
        else:
            masked.append(arg)
    return masked


def entry(operation: str, event: str, **fields: Any) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "operation": operation,
        "event": event,
        **fields,
    }


class Journal:
    """Appends entries to the journal on the core node."""

    def __init__(self, conns: Connections, core: str, patience: float = 120.0) -> None:
        self.conns = conns
        self.core = core
        self.patience = patience
        self._one_at_a_time = threading.Lock()

    def write(self, *entries: dict[str, Any]) -> None:
        """Append entries, one write at a time: a rollout's workers all journal at once, over
        the one connection to the core node, whose sshd allows ten sessions on it."""
        with self._one_at_a_time:
            self._append(*entries)

    def _append(self, *entries: dict[str, Any]) -> None:
        """Append entries, waiting for a rebooting core node rather than losing them."""
        data = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode()
        # never through a link planted at the journal or in /var/log/kato
        argv, stdin = safe_write.append_argv(JOURNAL_PATH), safe_write.prelude() + data
        self.conns.call(self.core, lambda t: t.run(argv, stdin=stdin, timeout=30), self.patience)


def read(core: Transport, limit: int) -> list[dict[str, Any]]:
    """The last `limit` entries (lines that do not parse are skipped, not fatal)."""
    done = core.run(
        ("sh", "-c", 'test -f "$1" && tail -n "$2" "$1" || true', "sh", JOURNAL_PATH, str(limit)),
        timeout=30,
    )
    entries = []
    for line in done.stdout.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries
