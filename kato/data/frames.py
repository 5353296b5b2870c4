"""Where each member's compressed bytes lie in a zstd archive, found from the frame and block
headers alone (nothing is decompressed): so import can send a member to its node still
compressed. kato writes every member's tar header as a raw frame of its own, with the member's
data in the frames after it; an archive laid out otherwise simply has no regions, and import
then decompresses on this machine as before. And export's last check of the frames it wrote
itself (`check_frames`)."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from kato.data.archive import BLOCK
from kato.data.invalid import ArchiveInvalid

_MAGIC = 0xFD2FB528
_SKIPPABLE = 0x184D2A50  # the 16 magic numbers 0x184D2A50..5F
_FCS_SIZES = (0, 2, 4, 8)
_DICT_SIZES = (0, 1, 2, 4)


class FrameProblem(ValueError):
    """The bytes at an offset are not a zstd frame."""


@dataclass(frozen=True)
class Frame:
    offset: int
    end: int
    raw: int | None  # the content size of a frame made of one raw block, else None
    content_offset: int = 0  # where that raw block's content starts


def frames(fd: int) -> Iterator[Frame]:
    """The frames of the zstd file `fd`, in order (FrameProblem where one does not parse)."""
    size, offset = os.fstat(fd).st_size, 0
    while offset < size:
        frame = _frame(fd, offset, size)
        yield frame
        offset = frame.end


def _frame(fd: int, offset: int, size: int) -> Frame:
    head = os.pread(fd, 18, offset)
    if len(head) < 5:
        raise FrameProblem(f"a frame header cut short at byte {offset}")
    magic = int.from_bytes(head[:4], "little")
    if magic & 0xFFFFFFF0 == _SKIPPABLE:
        return Frame(offset, offset + 8 + int.from_bytes(head[4:8], "little"), None)
    if magic != _MAGIC:
        raise FrameProblem(f"no zstd frame at byte {offset}")
    descriptor = head[4]
    single = (descriptor >> 5) & 1
    fcs = _FCS_SIZES[descriptor >> 6] or single
    position = offset + 5 + (0 if single else 1) + _DICT_SIZES[descriptor & 3] + fcs
    blocks, raw, content = 0, 0, position + 3
    while True:
        header = os.pread(fd, 3, position)
        if len(header) < 3:
            raise FrameProblem(f"a block header cut short at byte {position}")
        value = int.from_bytes(header, "little")
        last, kind, length = value & 1, (value >> 1) & 3, value >> 3
        if kind == 3:
            raise FrameProblem(f"a reserved block type at byte {position}")
        blocks += 1
        raw = length if kind == 0 else -1
        position += 3 + (1 if kind == 1 else length)
        if last:
            break
    end = position + (4 if (descriptor >> 2) & 1 else 0)
    if end > size:
        raise FrameProblem(f"a frame running past the end of the file at byte {offset}")
    return Frame(offset, end, raw if blocks == 1 and raw >= 0 else None, content)


def member_regions(fd: int, sizes: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """{member name: (start, end)} of the compressed bytes holding each member's data and
    padding (the last one's run to the end of the file, end-of-archive frames included),
    for the members named in `sizes` whose headers are one-block raw frames of their own.
    Every byte after the first frame (the manifest's) lies in a header or a region: a member
    named twice, or frames between the manifest and the first header, are a FrameProblem."""
    found: dict[str, tuple[int, int]] = {}
    current: str | None = None
    start = 0
    for index, frame in enumerate(frames(fd)):
        name = _header(fd, frame, sizes) if frame.raw == BLOCK else None
        if name is None:
            if current is None and index > 0:
                raise FrameProblem(f"a frame before the first member's header at {frame.offset}")
            continue
        if name in found or name == current:
            raise FrameProblem(f"{name} appears twice")
        if current is not None:
            found[current] = (start, frame.offset)
        current, start = name, frame.end
    if current is not None:
        found[current] = (start, os.fstat(fd).st_size)
    return found


def _header(fd: int, frame: Frame, sizes: Mapping[str, int]) -> str | None:
    """The member whose tar header the raw frame holds, if it is one of `sizes`."""
    try:
        info = tarfile.TarInfo.frombuf(
            os.pread(fd, BLOCK, frame.content_offset), "utf-8", "surrogateescape"
        )
    except tarfile.HeaderError:
        return None
    return info.name if sizes.get(info.name) == info.size and info.isreg() else None


def check_frames(path: Path, frames: list[tuple[int, bytes]], size: int, shown: str) -> None:
    """The frames kato wrote itself are on disk as written, and the file is as long as all
    that was written (so the members, checked above, fill exactly the rest)."""
    with path.open("rb") as file:
        for offset, expected in frames:
            if os.pread(file.fileno(), len(expected), offset) != expected:
                raise ArchiveInvalid(
                    shown,
                    "archive",
                    f"the frame at byte {offset} reads back differently from what was written",
                )
        if os.fstat(file.fileno()).st_size != size:
            raise ArchiveInvalid(shown, "archive", "the file's size is not what was written")
