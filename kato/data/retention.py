"""`--keep N`: which archives a scheduled run deletes, decided from their age and verify result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kato.errors import UsageError


@dataclass(frozen=True)
class Candidate:
    name: str
    created: datetime
    verified: bool
    problem: str | None = None  # why it failed to verify


@dataclass(frozen=True)
class RetentionPlan:
    keep: tuple[str, ...]  # the newest N archives that verify, newest first
    delete: tuple[str, ...]  # older archives that verify
    invalid: tuple[Candidate, ...]  # archives that fail to verify: never deleted, reported


@dataclass(frozen=True)
class RetentionResult:
    plan: RetentionPlan
    deleted: tuple[str, ...]
    errors: tuple[str, ...]  # archives that could not be deleted, with why


def plan_retention(candidates: Sequence[Candidate], keep: int) -> RetentionPlan:
    """Keep the newest `keep` verified archives; delete only older ones that verify. An archive
    that fails verification is never deleted, so neither is the newest verified one (keep >= 1)."""
    if keep < 1:
        raise UsageError(f"--keep must be at least 1, not {keep}")
    verified = sorted(
        (c for c in candidates if c.verified), key=lambda c: (c.created, c.name), reverse=True
    )
    invalid = sorted(
        (c for c in candidates if not c.verified), key=lambda c: (c.created, c.name), reverse=True
    )
    return RetentionPlan(
        keep=tuple(c.name for c in verified[:keep]),
        delete=tuple(c.name for c in verified[keep:]),
        invalid=tuple(invalid),
    )


def apply_retention(directory: Path, plan: RetentionPlan) -> RetentionResult:
    """Delete the plan's archives from `directory`; a failure is reported, not raised."""
    deleted: list[str] = []
    errors: list[str] = []
    for name in plan.delete:
        try:
            (directory / name).unlink()
            deleted.append(name)
        except OSError as exc:
            errors.append(f"{name}: {exc.strerror}")
    return RetentionResult(plan, tuple(deleted), tuple(errors))
