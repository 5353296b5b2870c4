"""The one output sink: tables and --json documents on stdout; progress, warnings, errors on stderr.

The only module that imports rich. On a terminal tables are drawn; in a pipe they are plain,
aligned text that scripts can read. Every string shown passes through `visible`: text from a
node, an archive, a file name or the journal never reaches the terminal as control characters
or as rich markup.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status


# C0 and C1 controls, DEL, and the Unicode marks that reorder what follows them on screen.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def visible(text: object, *, lines: bool = False) -> str:
    """`text` with every control character shown as an escape (ESC as \\e, others as \\xNN);
    with `lines`, newlines stay (a message of several lines), all else is escaped."""
    return (_CONTROL_BUT_NEWLINE if lines else _CONTROL).sub(_escaped, str(text))


def _is_terminal(stderr: bool) -> bool:
    """Whether rich draws on this stream: a terminal, or one of rich's own settings decides.
    Otherwise (a pipe, a file, cron) text is written as is and rich is not even loaded, which
    spares a scripted command about 0.02 s of start-up; rich would write the same plain text."""
    if "FORCE_COLOR" in os.environ or "TTY_COMPATIBLE" in os.environ:
        return _console(stderr).is_terminal
    isatty = getattr(sys.stderr if stderr else sys.stdout, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


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
    if _is_terminal(False):
        from rich.table import Table
        from rich.text import Text

        drawn = Table(title=Text(visible(title)) if title else None, title_justify="left")
        for column in columns:
            drawn.add_column(Text(visible(column)))
        for row in rows:
            drawn.add_row(*(Text(visible(cell)) for cell in row))  # Text: never markup
        _console(False).print(drawn)
        return
    columns = [visible(c) for c in columns]
    rows = [[visible(c) for c in row] for row in rows]
    widths = [max(len(c) for c in col) for col in zip(columns, *rows, strict=False)]
    lines = [columns, *rows]
    if title:
        sys.stdout.write(visible(title) + "\n")
    for line in lines:
        cells = [str(cell).ljust(width) for cell, width in zip(line, widths, strict=False)]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")
    sys.stdout.flush()


def line(text: str) -> None:
    """A line of data on stdout."""
    sys.stdout.write(visible(text, lines=True) + "\n")
    sys.stdout.flush()


def _say(text: str, style: str | None = None) -> None:
    if not _is_terminal(True):
        sys.stderr.write(visible(text, lines=True) + "\n")
        sys.stderr.flush()
        return
    _console(True).print(
        visible(text, lines=True), style=style, markup=False, highlight=False, emoji=False
    )


def info(text: str) -> None:
    _say(text)


def warn(text: str) -> None:
    _say(f"warning: {text}", "yellow")


def error(message: str, hint: str | None) -> None:
    _say(f"error: {message}", "bold red")
    if hint:
        _say(f"hint: {hint}")


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
            self._status.update(_plain_text(message))
        info(f"- {message}")

    def detail(self, message: str) -> None:
        if self._status is not None:
            self._status.update(_plain_text(f"{self._step}: {message}"))
        elif time.monotonic() - self._shown >= DETAIL_EVERY:
            # in a log (cron, a pipe) a line now and then shows a long step is alive
            self._shown = time.monotonic()
            info(f"  {message}")

    def warn(self, message: str) -> None:
        warn(message)


def _plain_text(message: str) -> Any:
    from rich.text import Text

    return Text(visible(message))


@contextmanager
def progress() -> Iterator[ConsoleProgress]:
    if _is_terminal(True):
        with _console(True).status("starting") as status:
            yield ConsoleProgress(status)
    else:
        yield ConsoleProgress(None)
