"""The archive writer: a tar stream GNU tar reads, manifest first, members byte-identical."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import IO

import pytest

from kato.data import archive
from kato.data.manifest import NAME, SLOT, Manifest, Member, decode
from kato.data.verify import verify_archive
from tests.unit.data.build import (
    COMPRESSIONS,
    RICH_ENTRIES,
    Content,
    random_bytes,
    rich_tree,
    write_archive,
)

STREAM_SIZE = 3 * 2**20 + 12_345  # several MiB, not a multiple of 512


@dataclass(frozen=True)
class Written:
    path: Path
    compress: str
    contents: tuple[Content, ...]
    manifest: Manifest


@pytest.fixture(scope="module", params=COMPRESSIONS)
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Written:
    compress: str = request.param
    contents = (
        Content(
            "node1",
            "postgresql",
            "services",
            "stream",
            random_bytes(STREAM_SIZE, seed=3),
            "/var/lib/kato/data/services/postgresql",
        ),  # fmt: skip
        Content(
            "node1",
            "controller",
            "controller",
            "tree",
            rich_tree(),
            "/var/lib/kato/data/controller",
        ),  # fmt: skip
    )
    path = tmp_path_factory.mktemp(compress) / f"prod{archive.SUFFIX[compress]}"
    manifest = write_archive(path, compress, contents)
    return Written(path, compress, contents, manifest)


def gnu_tar(*args: str) -> str:
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C.UTF-8"}
    done = subprocess.run(("tar", *args), capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return done.stdout


def test_the_file_starts_with_its_compressions_magic(written: Written) -> None:
    head = written.path.read_bytes()[:4]
    assert archive.compression_of(head) == written.compress
    if written.compress == "none":
        assert head == b"MANI"  # the manifest's tar header comes first, uncompressed


def test_gnu_tar_lists_the_manifest_first_then_the_members(written: Written) -> None:
    listing = gnu_tar("--numeric-owner", "-tvf", str(written.path)).splitlines()
    rows = [line.split() for line in listing]
    assert [row[-1] for row in rows] == [NAME, *(c.name for c in written.contents)]
    assert [int(row[2]) for row in rows] == [SLOT, *(len(c.data) for c in written.contents)]
    assert all(row[0] == "-rw-------" and row[1] == "0/0" for row in rows)
    assert all(row[3:5] == ["2023-11-14", "22:13"] for row in rows), rows


def test_gnu_tar_extracts_members_and_manifest_identical(written: Written) -> None:
    stream = written.contents[0]
    done = subprocess.run(
        ("tar", "-xOf", str(written.path), stream.name), capture_output=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout == stream.data
    body = subprocess.run(
        ("tar", "-xOf", str(written.path), NAME), capture_output=True, timeout=60
    ).stdout
    assert len(body) == SLOT and body.endswith(b" ")
    assert decode(body) == written.manifest


def test_verify_passes_with_the_right_counts(written: Written) -> None:
    result = verify_archive(written.path)
    assert result.manifest == written.manifest
    assert result.members == 2
    assert result.bytes == STREAM_SIZE + len(written.contents[1].data)
    assert result.entries == len(RICH_ENTRIES)
    assert result.path == str(written.path)


def test_verify_shows_each_member_to_visit(written: Written) -> None:
    seen: dict[str, bytes] = {}

    def visit(member: Member, stream: IO[bytes]) -> None:
        seen[member.name] = stream.read()

    verify_archive(written.path, visit=visit)
    # trees are checked by verify itself; stream members are shown whole to `visit`
    assert seen == {written.contents[0].name: written.contents[0].data}


def read_back(path: Path) -> dict[str, bytes]:
    """Every member's bytes, in archive order, as reading() and tarfile give them."""
    found: dict[str, bytes] = {}
    with archive.reading(str(path)) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for info in tar:
            assert info.isreg() and info.mode == 0o600 and info.mtime == 1_700_000_000
            body = tar.extractfile(info)
            assert body is not None
            found[info.name] = body.read()
        assert stream.read() == b""  # read to the end: the decompressor's status is checked
    return found


def test_reading_gives_back_every_member_byte_identical(written: Written) -> None:
    found = read_back(written.path)
    assert list(found) == [NAME, *(c.name for c in written.contents)]
    for content in written.contents:
        assert len(found[content.name]) == len(content.data)
        assert hashlib.sha256(found[content.name]).digest() == hashlib.sha256(content.data).digest()
    assert decode(found[NAME]) == written.manifest


def test_the_tree_member_is_the_inner_tar_with_names_modes_owners_and_links(
    written: Written,
) -> None:
    tree = read_back(written.path)[written.contents[1].name]
    with tarfile.open(fileobj=io.BytesIO(tree), mode="r:") as inner:
        infos = inner.getmembers()
        got = [(i.name, i.type, i.mode, i.uid, i.gid, i.linkname) for i in infos]
        files = {}
        for i in infos:
            body = inner.extractfile(i) if i.isreg() else None
            if body is not None:
                files[i.name] = body.read()
    want = [(e.name, e.type, e.mode, e.uid, e.gid, e.linkname) for e in RICH_ENTRIES]
    assert got == want
    assert files == {e.name: e.data for e in RICH_ENTRIES if e.type == tarfile.REGTYPE}


def test_an_empty_member_and_no_members(tmp_path: Path) -> None:
    for compress in COMPRESSIONS:
        empty = Content("node1", "redis", "services", "stream", b"")
        path = tmp_path / f"one-{compress}"
        write_archive(path, compress, [empty])
        assert verify_archive(path).members == 1
        path = tmp_path / f"none-{compress}"
        write_archive(path, compress, [])
        result = verify_archive(path)
        assert (result.members, result.bytes, result.entries) == (0, 0, 0)


def test_the_writer_refuses_an_unknown_compression(tmp_path: Path) -> None:
    with (tmp_path / "x").open("wb") as file, pytest.raises(ValueError, match="unknown"):
        archive.ArchiveWriter(file, "bzip2", 0)


def test_a_name_too_long_for_one_header_is_refused() -> None:
    assert len(archive.tar_header("data/" + "n" * 94, 0, 0)) == archive.BLOCK
    with pytest.raises(ValueError, match="too long"):
        archive.tar_header("data/" + "n" * 200, 0, 0)


# -- raw frames: the holes the writer fills in place ------------------------------------------

SIZES = (0, 1, 511, 512, 65_535, 65_536, 65_537, 131_071, 131_072, 131_073, 512 + SLOT)


@pytest.mark.parametrize("compress", COMPRESSIONS)
def test_a_raw_frames_length_depends_only_on_the_datas_length(compress: str) -> None:
    for size in SIZES:
        lengths = {
            len(archive.raw_frame(data, compress))
            for data in (b"a" * size, b"b" * size, bytes(size), random_bytes(size))
        }
        assert len(lengths) == 1, (size, lengths)
    if compress == "none":
        assert archive.raw_frame(b"abc", "none") == b"abc"
    else:
        # stored, not compressed: at most a small overhead per block
        assert len(archive.raw_frame(bytes(SLOT), compress)) < SLOT + 100


def decode_with(compress: str, frame: bytes) -> bytes:
    program = {"zstd": ("zstd", "-d", "-q", "-c"), "gzip": ("gzip", "-d", "-c")}[compress]
    done = subprocess.run(program, input=frame, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("compress", ["zstd", "gzip"])
def test_the_compressors_own_tool_decodes_a_raw_frame(compress: str) -> None:
    for size in SIZES:
        data = random_bytes(size, seed=size)
        frame = archive.raw_frame(data, compress)
        assert decode_with(compress, frame) == data, size
        if compress == "gzip":
            assert gzip.decompress(frame) == data


@pytest.mark.parametrize("compress", ["zstd", "gzip"])
def test_raw_frames_and_compressed_frames_concatenate_into_one_stream(compress: str) -> None:
    from tests.unit.data.build import compressed

    parts = [b"head" * 100, random_bytes(200_000, seed=5), b"tail"]
    frames = archive.raw_frame(parts[0], compress) + compressed(parts[1], compress)
    frames += archive.raw_frame(parts[2], compress)
    assert decode_with(compress, frames) == b"".join(parts)


def test_compression_is_recognised_by_its_magic() -> None:
    assert archive.compression_of(b"\x28\xb5\x2f\xfd") == "zstd"
    assert archive.compression_of(gzip.compress(b"x")[:4]) == "gzip"
    assert archive.compression_of(b"MANI") == "none"
    assert archive.compression_of(b"") == "none"


# -- archive names ------------------------------------------------------------------------------


@pytest.mark.parametrize(("compress", "suffix"), archive.SUFFIX.items())
def test_archive_names_round_trip(compress: str, suffix: str) -> None:
    created = datetime(2024, 2, 29, 23, 59, 58, tzinfo=UTC)
    for cluster in ("prod", "my-prod-2", "a"):
        name = archive.archive_name(cluster, created, compress)
        assert name == f"{cluster}-20240229T235958Z{suffix}"
        assert archive.parse_archive_name(name) == (cluster, created)


def test_an_archive_name_is_in_utc() -> None:
    local = datetime(2024, 3, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert archive.archive_name("prod", local, "none") == "prod-20240229T230000Z.tar"


@pytest.mark.parametrize(
    "name",
    [
        "prod.tar.zst",
        "prod-20240229T235958Z.tar.bz2",
        "prod-20240229T235958Z.tgz",
        "prod-20240229T235958.tar",
        "prod-20240229-235958Z.tar",
        "-20240229T235958Z.tar",
        "prod-20240229T235958Z.tar.zst.tmp",
        ".prod-20240229T235958Z.tar.zst.part",
        "",
    ],
)
def test_other_names_are_not_archive_names(name: str) -> None:
    assert archive.parse_archive_name(name) is None


@pytest.mark.parametrize("name", ["prod-20241301T000000Z.tar", "prod-20240230T250000Z.tar.gz"])
def test_an_impossible_time_is_not_an_archive_name(name: str) -> None:
    assert archive.parse_archive_name(name) is None
