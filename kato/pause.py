"""Pause points, so a test on real nodes can act *during* a phase of a long operation instead of
guessing a sleep: with KATO_PAUSE_DIR set, kato stops at each point it passes (an upgrade's
phases), says so by creating `DIR/POINT.reached`, and goes on once `DIR/POINT.go` exists
(`DIR/off` lets it pass every point from then on). Unset (always, outside tests), a point
costs one environment lookup.

Finer points, after each step journaled on a node (Operation.step: `node2 restart router`),
are passed too often to stop at all of them: kato stops at one only when KATO_PAUSE_AT names
it, a comma-separated list of file-name patterns (`node2-restart-*`)."""

from __future__ import annotations

import fnmatch
import os
import re
import time
from pathlib import Path

from kato.errors import KatoError

DEFAULT_TIMEOUT = 600.0


def file_name(point: str) -> str:
    """`upgrade rolling back: stopping` -> `upgrade-rolling-back-stopping`."""
    return re.sub(r"[^a-z0-9]+", "-", point.lower()).strip("-")


def point(name: str, *, asked_only: bool = False) -> None:
    """Stop here until the test lets kato go on (only with KATO_PAUSE_DIR set; with
    `asked_only`, only when KATO_PAUSE_AT names this point)."""
    directory = os.environ.get("KATO_PAUSE_DIR")
    if not directory:
        return
    if asked_only and not asked(file_name(name)):
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


def asked(name: str) -> bool:
    """Whether KATO_PAUSE_AT (comma-separated fnmatch patterns) names the point `name`."""
    patterns = os.environ.get("KATO_PAUSE_AT", "").split(",")
    return any(fnmatch.fnmatchcase(name, p.strip()) for p in patterns if p.strip())
