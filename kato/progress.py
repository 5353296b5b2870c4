"""The Progress protocol: how the domain reports what it is doing without printing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

_notices: list[Callable[[str], None]] = []


def notice(message: str) -> None:
    """Something the user must hear at once whatever the command (a lock taken over from a
    dead operation): the command line shows it on stderr."""
    for sink in _notices:
        sink(message)


def listen(sink: Callable[[str], None]) -> None:
    """Where notices go (set once by the command line)."""
    _notices[:] = [sink]


class Progress(Protocol):
    def step(self, message: str) -> None:
        """A new phase begins (shown until the next step)."""

    def detail(self, message: str) -> None:
        """A finer-grained note inside the current step (e.g. a package being configured)."""

    def warn(self, message: str) -> None:
        """Something the user should know that does not stop the command."""


class SilentProgress:
    """A Progress that reports nothing (tests, --quiet)."""

    def step(self, message: str) -> None:
        pass

    def detail(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass
