"""--keep N: the newest N verified archives stay, older verified ones go, invalid ones stay."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kato.data.retention import Candidate, apply_retention, plan_retention
from kato.errors import UsageError

BASE = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def archive(day: int, verified: bool = True) -> Candidate:
    created = BASE + timedelta(days=day)
    name = f"prod-{created:%Y%m%dT%H%M%SZ}.tar.zst"
    return Candidate(name, created, verified, None if verified else "MANIFEST.json: truncated")


def test_keeps_the_newest_n_verified_and_deletes_older_verified() -> None:
    found = [archive(d) for d in (0, 3, 1, 4, 2)]  # any order in
    plan = plan_retention(found, keep=2)
    assert plan.keep == (archive(4).name, archive(3).name)
    assert set(plan.delete) == {archive(0).name, archive(1).name, archive(2).name}
    assert plan.invalid == ()


def test_an_archive_that_fails_verification_is_never_deleted_and_is_reported() -> None:
    found = [archive(0, verified=False), archive(1), archive(2), archive(3, verified=False)]
    plan = plan_retention(found, keep=1)
    assert plan.keep == (archive(2).name,)
    assert plan.delete == (archive(1).name,)
    assert [c.name for c in plan.invalid] == [archive(3).name, archive(0).name]
    assert plan.invalid[0].problem == "MANIFEST.json: truncated"


def test_the_newest_verified_stays_even_when_newer_ones_are_invalid() -> None:
    found = [archive(0), archive(1), archive(5, verified=False), archive(6, verified=False)]
    plan = plan_retention(found, keep=1)
    assert plan.keep == (archive(1).name,)
    assert plan.delete == (archive(0).name,)


def test_nothing_is_deleted_when_no_archive_verifies() -> None:
    plan = plan_retention([archive(d, verified=False) for d in range(4)], keep=1)
    assert plan.keep == () and plan.delete == () and len(plan.invalid) == 4


def test_fewer_archives_than_keep_deletes_nothing() -> None:
    plan = plan_retention([archive(0), archive(1)], keep=5)
    assert plan.delete == () and len(plan.keep) == 2
    assert plan_retention([], keep=1).keep == ()


def test_keep_below_one_is_refused() -> None:
    with pytest.raises(UsageError, match="at least 1"):
        plan_retention([archive(0)], keep=0)


def test_the_same_time_is_ordered_by_name_so_the_decision_is_stable() -> None:
    a = Candidate("prod-20261122T030000Z.tar.gz", BASE, True)
    b = Candidate("prod-20261122T030000Z.tar.zst", BASE, True)
    assert plan_retention([a, b], keep=1) == plan_retention([b, a], keep=1)


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_every_mix_keeps_the_rule(keep: int) -> None:
    """All verified/invalid patterns of six archives: the rule holds for each."""
    for pattern in itertools.product((True, False), repeat=6):
        found = [archive(d, ok) for d, ok in enumerate(pattern)]
        plan = plan_retention(found, keep)
        verified = sorted((c for c in found if c.verified), key=lambda c: c.created)
        invalid = {c.name for c in found if not c.verified}
        assert not set(plan.delete) & invalid
        if verified:
            assert verified[-1].name in plan.keep
        assert len(plan.keep) == min(keep, len(verified))
        assert set(plan.keep) | set(plan.delete) == {c.name for c in verified}
        newest_deleted = max((c.created for c in found if c.name in plan.delete), default=None)
        oldest_kept = min((c.created for c in found if c.name in plan.keep), default=None)
        if newest_deleted and oldest_kept:
            assert newest_deleted < oldest_kept


def test_apply_deletes_only_the_plans_archives_and_reports_failures(tmp_path: Path) -> None:
    found = [archive(d) for d in range(3)] + [archive(3, verified=False)]
    for c in found:
        (tmp_path / c.name).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("mine")
    plan = plan_retention(found, keep=1)
    (tmp_path / plan.delete[0]).unlink()  # someone else removed it meanwhile
    done = apply_retention(tmp_path, plan)
    assert done.deleted == plan.delete[1:]
    assert len(done.errors) == 1 and plan.delete[0] in done.errors[0]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([archive(2).name, archive(3).name, "notes.txt"])
