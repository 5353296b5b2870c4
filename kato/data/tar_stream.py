"""An archive file's tar stream, decompressed in pieces for `kato data verify`: zstd by libzstd
in this process (unzstd.py, as export's read-back does; `zstd -d` where the library cannot be
loaded), gzip member by member (gzip_members.py), a plain tar as it is. Each piece is a view of
a reused buffer, valid until the next one: nothing is copied on its way to hashlib and the tar
walk, which is what makes a verify run at the speed of libzstd and sha256 instead of tarfile's
stream mode copying every read.

When the stream turns out corrupt or cut short, `failed_at(position)` says where in the
decompressed stream the bad compressed bytes lie (a gzip member, a zstd frame), so the error
can name the archive member those bytes hold."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from io import FileIO
from typing import IO

from kato.data import unzstd
from kato.data.archive import compression_of
from kato.data.gzip_members import GzipMembers
from kato.errors import ToolMissing
from kato.transport import local

CHUNK = 1 << 20  # compressed (or plain) bytes read at a time
UNZSTD = ("zstd", "-d", "-q", "-c")


class Corrupt(ValueError):
    """The decompressor refused the stream: the message is its reason."""


class TarStream:
    """`pieces()` of the tar stream inside `file` (open for reading, at offset 0)."""

    def __init__(self, file: FileIO) -> None:
        self.file = file
        self.kind = compression_of(os.pread(file.fileno(), 4, 0))
        if self.kind == "zstd" and not unzstd.available() and local.which("zstd") is None:
            raise ToolMissing("zstd", "zstd")
        self._gzip: GzipMembers | None = None
        self._zstd: unzstd.Decompressor | None = None

    def pieces(self) -> Iterator[memoryview]:
        try:
            if self.kind == "zstd":
                yield from self._unzstd()
            elif self.kind == "gzip":
                self._gzip = GzipMembers(self.file)
                while data := self._gzip.read(CHUNK):
                    yield memoryview(data)
            else:
                yield from _read(self.file)
        except unzstd.ZstdError as exc:
            raise Corrupt(f"zstd: {exc}") from None
        except (zlib.error, EOFError, local.FilterFailed) as exc:
            raise Corrupt(str(exc)) from None

    def failed_at(self, position: int) -> int:
        """Where the bad bytes begin, once `pieces` raised after handing out `position`
        bytes: the last byte handed out of the gzip member or zstd frame that failed, or
        where it began if none was."""
        if self._gzip is not None and self._gzip.failed_at is not None:
            return self._gzip.failed_at
        if self._zstd is not None:
            return max(self._zstd.frame_start, position - 1)
        if self.kind == "zstd":  # through the command: frames unknown, the last byte out
            return max(0, position - 1)
        return position  # a plain tar: cut short right here

    def _unzstd(self) -> Iterator[memoryview]:
        if not unzstd.available():
            with local.filter_from(UNZSTD, self.file.fileno()) as out:
                yield from _read(out)
            return
        self._zstd = unzstd.Decompressor()
        buffer = bytearray(CHUNK)
        inputs = ((buffer, count) for count in iter(lambda: self.file.readinto(buffer), 0))
        yield from unzstd.pieces(self._zstd, inputs)


def _read(file: FileIO | IO[bytes]) -> Iterator[memoryview]:
    """A file's bytes as they are, read into one reused buffer."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while count := file.readinto(buffer):  # type: ignore[union-attr]
        yield view[:count]
