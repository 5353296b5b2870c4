"""Platform and kato version strings: their order, their major number and version ranges.

A version is `MAJOR.MINOR.PATCH` (more or fewer numbers are allowed) with an optional
`-SUFFIX`; as in semantic versioning a suffixed version sorts before the same numbers without
one (`1.2.1-broken` < `1.2.1`), and after every smaller number (`1.2.0` < `1.2.1-broken`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kato.errors import UsageError

PATTERN = re.compile(r"\A(\d+(?:\.\d+)*)(?:[-+~_](.+))?\Z")


@dataclass(frozen=True, order=True)
class Version:
    """A comparable version: its numbers, then 0 with a suffix (sorts first) or 1 without."""

    numbers: tuple[int, ...]
    final: int
    suffix: str
    text: str

    @property
    def major(self) -> int:
        return self.numbers[0]

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Version:
    """A Version, or a UsageError naming the text when it does not start with numbers."""
    match = PATTERN.match(text)
    if match is None:
        raise UsageError(
            f"{text!r} is not a version kato can order",
            hint="versions are numbers separated by dots, optionally followed by -SUFFIX",
        )
    numbers = tuple(int(n) for n in match.group(1).split("."))
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers = numbers[:-1]  # 1.2 == 1.2.0
    suffix = match.group(2) or ""
    return Version(numbers, 0 if suffix else 1, suffix, text)


def is_orderable(text: str) -> bool:
    return PATTERN.match(text) is not None


@dataclass(frozen=True)
class Range:
    """Versions from `min` (included) up to `below` (excluded); either may be open."""

    min: str | None = None
    below: str | None = None

    def contains(self, version: str) -> bool:
        parsed = parse(version)
        if self.min is not None and parsed < parse(self.min):
            return False
        return self.below is None or parsed < parse(self.below)

    def __str__(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min}")
        if self.below is not None:
            parts.append(f"< {self.below}")
        return ", ".join(parts) or "any"


def parse_range(raw: object, where: str, problems: list[str]) -> Range:
    """`{min: V, below: V}` (either may be left out); problems are added as `WHERE.KEY: WHAT`."""
    if raw is None:
        return Range()
    if not isinstance(raw, dict) or not set(raw) <= {"min", "below"}:
        problems.append(f"{where}: must be a mapping of min and/or below (versions)")
        return Range()
    for key, value in raw.items():
        if not isinstance(value, str) or not is_orderable(value):
            problems.append(f"{where}.{key}: must be a version such as '0.1.0', not {value!r}")
            return Range()
    return Range(raw.get("min"), raw.get("below"))
