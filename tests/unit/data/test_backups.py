"""`kato data backups DIR`: export's archives only, newest first, with size, age and health."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kato.data.backups import find_archives, list_backups
from kato.errors import UsageError

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp()


def _make(directory: Path) -> None:
    for name, size in (
        ("prod-20261122T030000Z.tar.zst", 300),
        ("prod-20261121T030000Z.tar.gz", 200),
        ("prod-20261120T030000Z.tar", 100),
        ("other-20261122T040000Z.tar.zst", 50),
        (".prod-20261122T110000Z.tar.zst.kato-partial-1234", 10),
        ("notes.txt", 5),
        ("prod-latest.tar.zst", 5),
    ):
        (directory / name).write_bytes(b"x" * size)


def test_only_exports_archives_newest_first(tmp_path: Path) -> None:
    _make(tmp_path)
    found = [(f.path.name, f.cluster) for f in find_archives(tmp_path)]
    assert found == [
        ("other-20261122T040000Z.tar.zst", "other"),
        ("prod-20261122T030000Z.tar.zst", "prod"),
        ("prod-20261121T030000Z.tar.gz", "prod"),
        ("prod-20261120T030000Z.tar", "prod"),
    ]


def test_size_age_and_verify_status(tmp_path: Path) -> None:
    _make(tmp_path)

    def verifier(path: Path) -> str | None:
        return "MANIFEST.json: truncated or corrupt" if path.name.endswith(".gz") else None

    listed = list_backups(tmp_path, verifier=verifier, now=NOW)
    rows = {b.name: (b.bytes, b.age_seconds, b.verified, b.status) for b in listed.backups}
    assert rows["prod-20261122T030000Z.tar.zst"] == (300, 9 * 3600, True, "ok")
    assert rows["prod-20261121T030000Z.tar.gz"] == (
        200, 33 * 3600, False, "MANIFEST.json: truncated or corrupt"
    )  # fmt: skip
    assert [b.name for b in listed.invalid] == ["prod-20261121T030000Z.tar.gz"]
    assert listed.backups[1].created == "2026-11-22T03:00:00Z"


def test_no_verify_checks_nothing(tmp_path: Path) -> None:
    _make(tmp_path)

    def verifier(path: Path) -> str | None:
        raise AssertionError("verified although told not to")

    listed = list_backups(tmp_path, verify=False, verifier=verifier, now=NOW)
    assert {b.status for b in listed.backups} == {"not verified"}
    assert listed.invalid == ()


def test_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a directory"):
        list_backups(tmp_path / "nope")
