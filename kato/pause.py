"""Pause points, so a test on real nodes can act *during* a phase of a long operation instead of
guessing a sleep: with KATO_PAUSE_DIR set, kato stops at each point it passes (an upgrade's
phases), says so by creating `DIR/POINT.reached`, and goes on once `DIR/POINT.go` exists
(`DIR/off` lets it pass every point from then on). Unset (always, outside tests), a point
costs one environment lookup."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from kato.errors import KatoError

DEFAULT_TIMEOUT = 600.0


def file_name(point: str) -> str:
    """`upgrade rolling back: stopping` -> `upgrade-rolling-back-stopping`."""
    return re.sub(r"[^a-z0-9]+", "-", point.lower()).strip("-")


def point(name: str) -> None:
    """Stop here until the test lets kato go on (only with KATO_PAUSE_DIR set)."""
    directory = os.environ.get("KATO_PAUSE_DIR")
    if not directory:
        return
    if (Path(directory) / "off").exists():
        return
    base = Path(directory) / file_name(name)
    go = base.with_name(base.name + ".go")
    base.with_name(base.name + ".reached").write_text(f"{os.getpid()}\n")
    timeout = float(os.environ.get("KATO_PAUSE_TIMEOUT", DEFAULT_TIMEOUT))
    deadline = time.monotonic() + timeout
    while not go.exists():
        if time.monotonic() > deadline:
            raise KatoError(
                f"pause point {name!r} was not released within {timeout:g}s",
                hint=f"create {go} (or unset KATO_PAUSE_DIR)",
            )
        time.sleep(0.05)
