"""The one output sink: tables and --json documents on stdout; progress, warnings, errors on stderr.

The only module that imports rich. On a terminal tables are drawn; in a pipe they are plain,
aligned text that scripts can read.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status


@cache
def _console(stderr: bool) -> Console:
    from rich.console import Console  # on first output, not at start-up

    return Console(stderr=stderr, soft_wrap=True)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    return value


def document(value: Any) -> None:
    """A --json document: dataclasses become objects, tuples become lists."""
    sys.stdout.write(json.dumps(_plain(value), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def table(columns: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None) -> None:
    if _console(False).is_terminal:
        from rich.table import Table

        drawn = Table(title=title, title_justify="left")
        for column in columns:
            drawn.add_column(column)
        for row in rows:
            drawn.add_row(*row)
        _console(False).print(drawn)
        return
    widths = [max(len(str(c)) for c in col) for col in zip(columns, *rows, strict=False)]
    lines = [columns, *rows]
    if title:
        sys.stdout.write(title + "\n")
    for line in lines:
        cells = [str(cell).ljust(width) for cell, width in zip(line, widths, strict=False)]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")
    sys.stdout.flush()


def line(text: str) -> None:
    """A line of data on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def info(text: str) -> None:
    _console(True).print(text, markup=False, highlight=False)


def warn(text: str) -> None:
    _console(True).print(f"warning: {text}", style="yellow", markup=False, highlight=False)


def error(message: str, hint: str | None) -> None:
    _console(True).print(f"error: {message}", style="bold red", markup=False, highlight=False)
    if hint:
        _console(True).print(f"hint: {hint}", markup=False, highlight=False)


DETAIL_EVERY = 30.0  # seconds between progress lines when not on a terminal


class ConsoleProgress:
    """Progress on stderr: a spinner with the current step on a terminal, plain lines otherwise."""

    def __init__(self, status: Status | None) -> None:
        self._status = status
        self._step = ""
        self._shown = time.monotonic()

    def step(self, message: str) -> None:
        self._step = message
        if self._status is not None:
            self._status.update(message)
        info(f"- {message}")

    def detail(self, message: str) -> None:
        if self._status is not None:
            self._status.update(f"{self._step}: {message}")
        elif time.monotonic() - self._shown >= DETAIL_EVERY:
            # in a log (cron, a pipe) a line now and then shows a long step is alive
            self._shown = time.monotonic()
            info(f"  {message}")

    def warn(self, message: str) -> None:
        warn(message)


@contextmanager
def progress() -> Iterator[ConsoleProgress]:
    if _console(True).is_terminal:
        with _console(True).status("starting") as status:
            yield ConsoleProgress(status)
    else:
        yield ConsoleProgress(None)
