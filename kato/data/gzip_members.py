"""Reads a gzip archive as kato writes it, a sequence of concatenated gzip members (RFC 1952),
knowing where in the decompressed stream the gzip member being decompressed began. So a corrupt
or cut member can be blamed on the tar member whose bytes it holds. gzip.GzipFile cannot say
that: its buffered reads run across member boundaries, so its errors surface early, while
tarfile is still reading the member before the bad one (or a header)."""

from __future__ import annotations

import zlib
from typing import IO

INPUT = 32 * 1024  # compressed bytes read at a time: the decompressor copies what it leaves
_GZIP = 16 + zlib.MAX_WBITS  # a gzip header and trailer (CRC-32 and length, both checked)


class GzipMembers:
    """Decompresses `file`, one gzip member after the other, as gzip -d does (zero bytes between
    members are skipped). A read returns data from one gzip member only, and an error is raised
    only by a read that has nothing else to return, so `failed_at` (set then) is an offset inside
    the bad gzip member: the last byte of it handed out, or where it began. (zlib drops what the
    failing call decompressed: the bytes just before a bad CRC are never handed out.)"""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.position = 0  # decompressed bytes returned so far
        self.failed_at: int | None = None
        self._start = 0  # where the gzip member being decompressed began
        self._member: zlib._Decompress | None = None
        self._input = b""  # compressed bytes read and not yet decompressed
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        try:
            return self._read(size)
        except (zlib.error, EOFError):
            self.failed_at = max(self._start, self.position - 1)
            raise

    def close(self) -> None:
        self._member, self._input = None, b""

    def _read(self, size: int) -> bytes:
        while size and not self._ended:
            member = self._member or self._next_member()
            if member is None:
                break
            if not self._input:
                self._input = self.file.read(INPUT)
                if not self._input:
                    raise EOFError("the file ends inside a gzip member (truncated)")
            data = member.decompress(self._input, size)
            if member.eof:
                self._input, self._member = member.unused_data, None
            else:
                self._input = member.unconsumed_tail
            if data:
                self.position += len(data)
                return data
        return b""

    def _next_member(self) -> zlib._Decompress | None:
        while not (rest := self._input.lstrip(b"\0")):
            self._input = self.file.read(INPUT)
            if not self._input:
                self._ended = True
                return None
        self._input, self._start = rest, self.position
        self._member = zlib.decompressobj(_GZIP)
        return self._member
