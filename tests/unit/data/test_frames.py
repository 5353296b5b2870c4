"""kato/data/frames.py: each member's compressed bytes found from the zstd headers alone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kato.data import frames
from tests.unit.data.build import Content, compressed, random_bytes, rich_tree, write_archive

CONTENTS = (
    Content("node1", "postgresql", "services", "stream", b"SELECT 1;\n" * 5000),
    Content("node1", "filesystem", "droplets", "tree", rich_tree()),
    Content("node2", "redis", "services", "stream", random_bytes(200_000, seed=3)),
    Content("node2", "filesystem", "droplets", "tree", rich_tree()),
)


def regions_of(path: Path, sizes: dict[str, int]) -> dict[str, tuple[int, int]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return frames.member_regions(fd, sizes)
    finally:
        os.close(fd)


def test_each_member_s_region_decompresses_to_its_data_and_padding(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.zst"
    write_archive(path, "zstd", CONTENTS)
    found = regions_of(path, {c.name: len(c.data) for c in CONTENTS})
    assert list(found) == [c.name for c in CONTENTS]
    raw = path.read_bytes()
    for content in CONTENTS:
        start, end = found[content.name]
        data = subprocess.run(("zstd", "-d", "-c"), input=raw[start:end],
                              capture_output=True, check=True).stdout  # fmt: skip
        size = len(content.data)
        assert data[:size] == content.data
        assert not data[size:].strip(b"\0")
    assert found[CONTENTS[-1].name][1] == len(raw)  # the last one runs to the end


def test_a_member_not_asked_for_still_ends_the_region_before_it(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.zst"
    write_archive(path, "zstd", CONTENTS)
    everything = regions_of(path, {c.name: len(c.data) for c in CONTENTS})
    asked = {c.name: len(c.data) for c in CONTENTS[:1]}
    assert regions_of(path, asked)[CONTENTS[0].name][0] == everything[CONTENTS[0].name][0]


def test_an_archive_recompressed_as_one_frame_has_no_regions(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.zst"
    write_archive(path, "zstd", CONTENTS)
    tar = subprocess.run(("zstd", "-d", "-c", str(path)), capture_output=True).stdout
    again = tmp_path / "again.tar.zst"
    again.write_bytes(compressed(tar, "zstd"))
    assert regions_of(again, {c.name: len(c.data) for c in CONTENTS}) == {}


@pytest.mark.parametrize("cut", [3, 700, -3])
def test_a_file_that_is_no_zstd_or_cut_short_is_a_frame_problem(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "a.tar.zst"
    write_archive(path, "zstd", CONTENTS)
    path.write_bytes(path.read_bytes()[:cut] if cut > 3 or cut < 0 else b"junk")
    with pytest.raises(frames.FrameProblem):
        regions_of(path, {c.name: len(c.data) for c in CONTENTS})
