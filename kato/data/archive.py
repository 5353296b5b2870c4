"""The archive on disk: a tar stream, compressed, whose first member is the manifest.

Export knows a member's size and checksum only after it has streamed it, yet the manifest
comes first and every tar header precedes its data. So the writer leaves a fixed-size hole
for each: an *uncompressed* frame (zstd raw blocks, gzip stored blocks), whose length does not
depend on its content, and fills it in place when the numbers are known. Decompressors read the
result as one ordinary stream of concatenated frames.
"""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, BinaryIO, Protocol

from kato.data import manifest as manifest_
from kato.data.gzip_members import GzipMembers
from kato.errors import ToolMissing
from kato.transport import local

COMPRESSIONS = ("zstd", "gzip", "none")
ARCHIVE_SUFFIXES = (".tar.zst", ".tar.gz", ".tar")
SUFFIX = {"zstd": ".tar.zst", "gzip": ".tar.gz", "none": ".tar"}
BLOCK = 512
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_RAW_BLOCK = 128 * 1024
_NAME = re.compile(r"(?P<cluster>.+)-(?P<stamp>\d{8}T\d{6}Z)(?P<suffix>\.tar(\.zst|\.gz)?)")


class Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class ArchiveWriteFailed(OSError):
    """Writing the archive file failed (disk full, compressor died): the message says why."""


def archive_name(cluster: str, created: datetime, compress: str) -> str:
    return f"{cluster}-{created.astimezone(UTC):%Y%m%dT%H%M%SZ}{SUFFIX[compress]}"


def parse_archive_name(name: str) -> tuple[str, datetime] | None:
    """(cluster, created) of a name export chose; None for any other name."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    try:
        created = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:  # looks like a stamp, is no date (month 13, ...)
        return None
    return match["cluster"], created


def tar_header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o600
    info.uname = info.gname = "root"
    header = info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")
    if len(header) != BLOCK:
        raise ValueError(f"member name too long for the archive: {name}")
    return header


def raw_frame(data: bytes, compress: str) -> bytes:
    """`data` stored uncompressed in the archive's compression format: its length depends
    only on len(data), so it can be rewritten in place."""
    if compress == "none":
        return data
    if compress == "zstd":
        return _zstd_raw(data)
    return _gzip_stored(data)


def _zstd_raw(data: bytes) -> bytes:
    # Frame header: single segment, 4-byte content size, no checksum, no dictionary.
    out = bytearray(_ZSTD_MAGIC + b"\xa0" + len(data).to_bytes(4, "little"))
    chunks = [data[i : i + _ZSTD_RAW_BLOCK] for i in range(0, len(data), _ZSTD_RAW_BLOCK)]
    for index, chunk in enumerate(chunks or [b""]):
        last = index == max(len(chunks), 1) - 1
        out += ((len(chunk) << 3) | int(last)).to_bytes(3, "little") + chunk  # type 0 = raw
    return bytes(out)


def _gzip_stored(data: bytes) -> bytes:
    out = bytearray(_GZIP_MAGIC + b"\x08\x00\x00\x00\x00\x00\x00\xff")
    chunks = [data[i : i + 0xFFFF] for i in range(0, len(data), 0xFFFF)]
    for index, chunk in enumerate(chunks or [b""]):
        out.append(1 if index == max(len(chunks), 1) - 1 else 0)  # BFINAL, BTYPE 00 (stored)
        out += len(chunk).to_bytes(2, "little") + (len(chunk) ^ 0xFFFF).to_bytes(2, "little")
        out += chunk
    out += zlib.crc32(data).to_bytes(4, "little") + (len(data) & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(out)


@dataclass(frozen=True)
class Hole:
    offset: int
    size: int  # uncompressed bytes it holds


class ArchiveWriter:
    """Writes an archive into `file` (a real, seekable file opened for writing)."""

    def __init__(self, file: BinaryIO, compress: str, mtime: int) -> None:
        if compress not in COMPRESSIONS:
            raise ValueError(f"unknown compression {compress}")
        self.file, self.compress, self.mtime = file, compress, mtime
        self._manifest = self._reserve(BLOCK + manifest_.SLOT)

    def _reserve(self, size: int) -> Hole:
        hole = Hole(self.file.tell(), size)
        self._write(raw_frame(bytes(size), self.compress))
        return hole

    def _fill(self, hole: Hole, data: bytes) -> None:
        assert len(data) == hole.size
        end = self.file.tell()
        self.file.seek(hole.offset)
        self._write(raw_frame(data, self.compress))
        self.file.seek(end)

    def _write(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:  # an unbuffered file may take less than it was given
                view = view[self.file.write(view) or 0 :]
        except OSError as exc:
            raise ArchiveWriteFailed(exc.errno, f"writing the archive: {exc.strerror}") from None

    def add(self, name: str, fill: Callable[[Sink], object]) -> int:
        """A member whose bytes `fill(sink)` writes; returns its size."""
        header = self._reserve(BLOCK)
        with self._compressed() as sink:
            counter = _Counter(sink)
            fill(counter)
            sink.write(bytes(-counter.size % BLOCK))
        self._fill(header, tar_header(name, counter.size, self.mtime))
        return counter.size

    def reserve_header(self) -> Hole:
        """Room for a member's tar header, filled by fill_header once its size is known."""
        return self._reserve(BLOCK)

    def fill_header(self, hole: Hole, name: str, size: int) -> bytes:
        """The header's frame, as written in the hole."""
        header = tar_header(name, size, self.mtime)
        self._fill(hole, header)
        return raw_frame(header, self.compress)

    def append(self, data: bytes) -> None:
        """Bytes already in the archive's compression (a node's zstd frames), as they are."""
        self._write(data)

    def finish(self, manifest: manifest_.Manifest, *, raw_end: bool = False) -> None:
        """The end of the tar stream (compressed, or as a raw frame), then the manifest in its
        place; flushed and fsynced."""
        if raw_end:
            self._write(raw_frame(bytes(2 * BLOCK), self.compress))
        else:
            with self._compressed() as sink:
                sink.write(bytes(2 * BLOCK))
        body = manifest.encode()
        self._fill(self._manifest, tar_header(manifest_.NAME, len(body), self.mtime) + body)
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError as exc:
            raise ArchiveWriteFailed(exc.errno, f"writing the archive: {exc.strerror}") from None

    @contextmanager
    def _compressed(self) -> Iterator[Sink]:
        self.file.flush()
        if self.compress == "none":
            yield _Guarded(self.file)
        elif self.compress == "gzip":
            gz = _Gzip(self.file)
            yield gz
            gz.close()
        else:
            with _zstd(self.file) as sink:
                yield sink
        self.file.flush()


class _Counter:
    """A sink that counts what passes through (content, then padding)."""

    def __init__(self, sink: Sink) -> None:
        self.sink, self.size = sink, 0

    def write(self, data: bytes) -> int:
        self.sink.write(data)
        self.size += len(data)
        return len(data)


class _Guarded:
    def __init__(self, file: BinaryIO) -> None:
        self.file = file

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            raise ArchiveWriteFailed(exc.errno, f"writing the archive: {exc.strerror}") from None


class _Gzip(_Guarded):
    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> int:
        super().write(self._z.compress(data))
        return len(data)

    def close(self) -> None:
        super().write(self._z.flush())


@contextmanager
def _zstd(file: BinaryIO) -> Iterator[Sink]:
    """A sink compressing into `file` at its current end through the zstd command."""
    with tempfile.TemporaryFile() as errors:
        proc = local.filter_into(("zstd", "-1", "-T0", "-q", "-c"), file.fileno(), errors)
        assert proc.stdin is not None
        sink = _Pipe(proc.stdin)
        try:
            yield sink
        except ArchiveWriteFailed:
            if not sink.broken:
                raise  # else zstd died first: its own message (below) says why
        finally:
            with suppress(BrokenPipeError):
                proc.stdin.close()
            status = proc.wait()
        file.seek(0, 2)  # the child wrote through a shared offset; be sure we are at the end
        if status != 0 or sink.broken:
            errors.seek(0)
            detail = errors.read().decode(errors="replace").strip().splitlines()
            raise ArchiveWriteFailed(
                0, f"zstd failed writing the archive: {detail[-1] if detail else status}"
            )


class _Pipe:
    def __init__(self, pipe: IO[bytes]) -> None:
        self.pipe, self.broken = pipe, False

    def write(self, data: bytes) -> int:
        try:
            return self.pipe.write(data)
        except BrokenPipeError:
            self.broken = True
            raise ArchiveWriteFailed(0, "zstd stopped reading (see its error)") from None


def members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members of a tar read in stream mode, one at a time. tarfile keeps every TarInfo
    it has read, so memory would grow with the member count: forget each one."""
    while (info := tar.next()) is not None:
        tar.members = []  # type: ignore[attr-defined]
        yield info


def compression_of(head: bytes) -> str:
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    return "none"


@contextmanager
def reading(path: str) -> Iterator[IO[bytes]]:
    """The archive's tar stream, decompressed as it is read."""
    with open(path, "rb") as file:
        kind = compression_of(os.pread(file.fileno(), 4, 0))  # leaves the offset at 0
        if kind == "zstd" and local.which("zstd") is None:
            raise ToolMissing("zstd", "zstd")
        if kind == "none":
            yield file
        elif kind == "gzip":
            yield GzipMembers(file)  # type: ignore[misc]
        else:
            with local.filter_from(("zstd", "-d", "-q", "-c"), file.fileno()) as stream:
                yield stream
