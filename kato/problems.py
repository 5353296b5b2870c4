"""The problems collector of the files kato validates: every problem with its file, line and
path (`c.yaml:7: nodes[1].address: '999.1.1.1' is not an IP address or host name`), all reported at
once; and the checks of values that more than one section asks for (addresses, seconds)."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any

from kato import yamldoc
from kato.errors import UsageError

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"\A(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?\Z")  # RFC 1123
MAX_SECONDS = 7 * 86400.0  # a timeout longer than a week is a typo (and overflows select)


def is_address(text: str) -> bool:
    """An IPv4 or IPv6 address, or an RFC 1123 host name (whose last label is not all digits:
    999.1.1.1 is a bad address, not a name)."""
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    if not HOSTNAME.match(text):
        return False
    return not text.rstrip(".").rsplit(".", 1)[-1].isdigit()


def is_seconds(value: object) -> bool:
    """A finite number of seconds above 0 and at most MAX_SECONDS (not .nan, not .inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0 < value <= MAX_SECONDS


class Problems:
    """Collects validation problems as `path:line: key: what is wrong`; the line (from `lines`,
    yamldoc.load_marked's) is that of the key, else of the nearest mapping or item holding it,
    so an editor's "go to line" lands on it. A document not read from a file has no lines."""

    def __init__(self, path: str, lines: dict[str, int] | None = None) -> None:
        self.path = path
        self.lines = lines or {}
        self.items: list[str] = []

    def add(self, where: str, what: str) -> None:
        line = yamldoc.line_of(where, self.lines)
        at = f"{self.path}:{line}" if line is not None else self.path
        self.items.append(f"{at}: {where + ': ' if where else ''}{what}")

    def raise_if_any(self) -> None:
        if self.items:
            raise UsageError(
                f"the cluster file has {len(self.items)} problem(s):\n  " + "\n  ".join(self.items),
                hint="fix them and check with `kato config validate`",
            )

    def unknown_keys(self, raw: dict[str, Any], allowed: set[str], where: str) -> None:
        for key in sorted(set(raw) - allowed, key=str):
            self.add(f"{where}.{key}" if where else str(key), "unknown key")

    def string(
        self,
        raw: dict[str, Any],
        key: str,
        where: str,
        required: bool = True,
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        at = f"{where}.{key}" if where else key
        value = raw.get(key)
        if value is None:
            if required:
                self.add(at, "required")
            return ""
        if not isinstance(value, str) or not value:
            self.add(at, "must be a non-empty string")
            return ""
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
            self.add(at, f"{value!r} contains a control character (a newline, a tab, ...)")
            return ""
        if pattern and not pattern.match(value):
            self.add(
                at,
                f"{value!r} is not allowed (letters, digits and -; no spaces or shell characters)",
            )
            return ""
        return value

    def integer(
        self, raw: dict[str, Any], key: str, where: str, default: int, low: int, high: int
    ) -> int:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.add(f"{where}.{key}", f"must be a whole number from {low} to {high}")
            return default
        return value

    def number(
        self, raw: dict[str, Any], key: str, where: str, default: float, off: bool = False
    ) -> float:
        """Seconds above 0; with `off`, 0 too (the thing switched off)."""
        value = raw.get(key, default)
        if off and value == 0 and not isinstance(value, bool):
            return 0.0
        if not is_seconds(value):
            self.add(
                f"{where}.{key}", f"must be a number of seconds above 0 and at most {MAX_SECONDS:g}"
            )
            return default
        return float(value)
