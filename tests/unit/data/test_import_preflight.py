"""kato/data/import_.py preflight: a format-2 archive is checked from its manifest before a
real import (its members are checked while they stage), but verified whole for a dry run,
which stages nothing: a damaged member fails the dry run (exit 6) naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kato.data import node_import
from kato.data.import_ import preflight
from kato.data.limits import UNLIMITED
from kato.data.verify import ArchiveInvalid, read_manifest
from kato.progress import SilentProgress
from tests.unit.data.build import Content, random_bytes, write_archive

CONTENTS = (
    Content("node1", "postgresql", "services", "stream", b"SELECT 1;\n" * 5000),
    Content("node2", "redis", "services", "stream", random_bytes(300_000, seed=3)),
)


def flipped(tmp_path: Path) -> tuple[Path, str]:
    """A zstd format-2 archive with one byte of the redis member's compressed data flipped."""
    path = tmp_path / "a.tar.zst"
    write_archive(path, "zstd", CONTENTS)
    where = node_import.regions(path, read_manifest(path))
    assert where is not None
    name = CONTENTS[1].name
    start, end = where[name]
    raw = bytearray(path.read_bytes())
    raw[(start + end) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path, name


def test_a_dry_run_verifies_every_member_and_names_the_damaged_one(tmp_path: Path) -> None:
    path, name = flipped(tmp_path)
    with pytest.raises(ArchiveInvalid) as caught:
        preflight(path, "a.tar.zst", UNLIMITED, SilentProgress(), whole=True)
    assert caught.value.exit_code == 6 and name in caught.value.message


def test_a_real_import_leaves_the_members_check_to_their_staging(tmp_path: Path) -> None:
    path, _ = flipped(tmp_path)
    checked = preflight(path, "a.tar.zst", UNLIMITED, SilentProgress())
    assert checked.check_while_staging and checked.regions is not None
    sound = tmp_path / "sound.tar.zst"
    write_archive(sound, "zstd", CONTENTS)
    whole = preflight(sound, "sound.tar.zst", UNLIMITED, SilentProgress(), whole=True)
    assert not whole.check_while_staging and whole.regions is not None
    assert [m.name for m in whole.manifest.members] == [c.name for c in CONTENTS]
