"""GzipMembers reads concatenated gzip members as gzip -d does, and says where a bad one began."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest

from kato.data.gzip_members import GzipMembers
from tests.unit.data.build import random_bytes

PARTS = (b"manifest " * 3000, random_bytes(70_000, seed=5), b"", b"tail " * 20_000)


def members(*parts: bytes) -> list[bytes]:
    return [gzip.compress(part, mtime=0) for part in parts]


def reads(stream: GzipMembers, size: int = 10240) -> list[bytes]:
    """Every read until the end (or an error, raised after what came before was kept)."""
    out: list[bytes] = []
    while data := stream.read(size):
        out.append(data)
    return out


def test_concatenated_members_read_as_one_stream_zeros_between_them_skipped() -> None:
    raw = b"\0" * 3 + b"\0".join(members(*PARTS)) + b"\0" * 100
    stream = GzipMembers(io.BytesIO(raw))
    assert b"".join(reads(stream)) == b"".join(PARTS) == gzip.decompress(b"".join(members(*PARTS)))
    assert stream.position == sum(map(len, PARTS)) and stream.failed_at is None
    assert GzipMembers(io.BytesIO(raw)).read() == b"".join(PARTS)


def test_no_read_runs_across_a_gzip_member_boundary() -> None:
    bounds = {0}
    for part in PARTS:
        bounds.add(max(bounds) + len(part))
    position = 0
    for data in reads(GzipMembers(io.BytesIO(b"".join(members(*PARTS)))), 7777):
        assert not any(position < bound < position + len(data) for bound in bounds)
        position += len(data)


def test_a_bad_crc_is_raised_at_the_members_end_placed_inside_it() -> None:
    good = members(*PARTS)
    bad = bytearray(good[1])
    bad[-6] ^= 0x01  # its CRC-32
    stream = GzipMembers(io.BytesIO(good[0] + bytes(bad) + good[3]))
    with pytest.raises(zlib.error, match="incorrect data check"):
        reads(stream)
    # the first member whole, then the second but for what its last (failing) read decompressed
    assert len(PARTS[0]) + len(PARTS[1]) - 10240 <= stream.position < len(PARTS[0]) + len(PARTS[1])
    assert stream.failed_at == stream.position - 1  # the last byte handed out: the bad member's


def test_a_member_cut_short_is_an_eof_error_inside_it() -> None:
    good = members(*PARTS)
    stream = GzipMembers(io.BytesIO(good[0] + good[1][:20]))
    with pytest.raises(EOFError, match="truncated"):
        reads(stream)
    assert stream.failed_at is not None
    assert len(PARTS[0]) <= stream.failed_at < len(PARTS[0]) + 20  # inside the cut member


@pytest.mark.parametrize("junk", [b"rawjunk" * 10, b"\x1f"], ids=["junk", "half a header"])
def test_junk_after_the_last_member_is_placed_after_the_end(junk: bytes) -> None:
    stream = GzipMembers(io.BytesIO(b"".join(members(*PARTS)) + junk))
    with pytest.raises((zlib.error, EOFError)):
        reads(stream)
    assert stream.failed_at == stream.position == sum(map(len, PARTS))
