"""In-process zstd decompression (kato/data/unzstd.py) against the zstd command's own frames:
the same bytes in pieces of any size, several frames, output larger than its buffer; a
flipped byte (checksum), a cut frame and no frame at all are refused."""

from __future__ import annotations

import os
import subprocess

import pytest

from kato.data import unzstd


def packed(data: bytes) -> bytes:
    return subprocess.run(("zstd", "-1", "-q", "-c"), input=data, capture_output=True,
                          check=True).stdout  # fmt: skip


def unpacked(compressed: bytes, step: int) -> bytes:
    decompressor = unzstd.Decompressor()
    out = bytearray()
    buffer = bytearray(step)
    try:
        for start in range(0, len(compressed), step):
            piece = compressed[start : start + step]
            buffer[: len(piece)] = piece
            for chunk in decompressor.feed(buffer, len(piece)):
                out += chunk
        decompressor.end()
    finally:
        decompressor.close()
    return bytes(out)


DATA = os.urandom(300_000) + b"seq\n" * 200_000 + bytes(9 << 20)  # > one output buffer of zeros


@pytest.mark.parametrize("step", [1 << 10, 65_537, 1 << 20])
def test_frames_decompress_to_the_same_bytes_in_pieces_of_any_size(step: int) -> None:
    compressed = packed(DATA[:1_000_000]) + packed(DATA[1_000_000:]) + packed(b"")
    assert unpacked(compressed, step) == DATA


def test_a_flipped_byte_is_caught_by_the_frame_checksum() -> None:
    compressed = bytearray(packed(DATA))
    compressed[len(compressed) // 3] ^= 0x01
    with pytest.raises(unzstd.ZstdError):
        unpacked(bytes(compressed), 1 << 16)


@pytest.mark.parametrize("cut", [0, 3, 100, -5])
def test_a_stream_cut_short_or_empty_is_refused(cut: int) -> None:
    compressed = packed(DATA)
    with pytest.raises(unzstd.ZstdError, match="truncated|Unknown|Src size|corrupt"):
        unpacked(compressed[:cut] if cut else b"", 1 << 16)


def test_garbage_after_the_frames_is_refused() -> None:
    with pytest.raises(unzstd.ZstdError):
        unpacked(packed(b"abc") + b"not a frame", 1 << 16)
