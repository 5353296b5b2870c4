"""Per-node results as tables and exit codes (3 when some nodes failed)."""

from __future__ import annotations

from collections.abc import Mapping

from kato.transport.fanout import FanOut, NodeFailure


def failure_rows(failed: Mapping[str, NodeFailure]) -> list[tuple[str, str, str]]:
    return [(f.node, f.phase, f.message) for f in failed.values()]


def exit_for(succeeded: Mapping[str, object], failed: Mapping[str, NodeFailure]) -> int:
    return int(FanOut(dict(succeeded), dict(failed)).exit_code)
