"""The Progress protocol: how the domain reports what it is doing without printing."""

from __future__ import annotations

from typing import Protocol


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
