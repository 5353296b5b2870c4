"""A tar stream's entries, found by reading only its headers: the bytes are fed in chunks of
any size, and everything between two headers (a file's data and padding) is skipped by
arithmetic, never copied or parsed. The reader hashes the same chunks in one hashlib call
each, so checking a tree costs a header parse per entry instead of Python copies per byte
(tarfile's stream mode copies its buffer on every read).

Each entry is a tarfile.TarInfo with what pax extended headers (`path`, `linkpath`, `size`)
and GNU long names/links say applied, as tarfile applies them (the outermost extended header
wins). Stricter than tarfile where tarfile would silently stop reading and GNU tar would
carry on (so the entries a reader checks are all the entries GNU tar extracts): a bad header
checksum anywhere, a tree cut short before its end blocks, sparse entries (kato's trees store
files in full), a link, directory or device header that carries data, and a global pax header
that renames entries are all refused."""

from __future__ import annotations

import tarfile
from collections.abc import Callable

BLOCK = 512
ZERO = bytes(BLOCK)
MAX_EXTENDED = 1 << 20  # a pax header or GNU long name beyond this is refused, not buffered
_EXTENDED = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.XGLTYPE)
_LONG = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_RENAMING = ("path", "linkpath", "size")


class TarProblem(ValueError):
    """The tar stream is corrupt or not one kato reads; `entry` names where, when known."""

    def __init__(self, problem: str, entry: str | None = None) -> None:
        super().__init__(problem)
        self.entry = entry


def _blocks(size: int) -> int:
    return -size % BLOCK + size


class TarWalk:
    """Feed it a tar stream (`feed`), then `end()`; `on_entry(info)` is called for every
    entry in order and may raise to stop the walk; `on_data(piece)`, if given, gets each
    regular file's data (not its padding) right after its entry, in views of what was fed.
    `count` is the entries seen so far."""

    def __init__(
        self,
        on_entry: Callable[[tarfile.TarInfo], None],
        on_data: Callable[[memoryview], None] | None = None,
    ) -> None:
        self.on_entry, self.on_data = on_entry, on_data
        self.count = 0
        self.finished = False  # the end-of-archive block was read
        self._skip = 0  # bytes of data and padding still to pass over
        self._data = 0  # of which data, for on_data
        self.offset = 0  # in the stream: where the entry on_entry gets has its data
        self._fed = 0  # bytes taken before this feed
        self._need = BLOCK  # bytes to collect in _pending before the next step
        self._pending = bytearray()
        self._extended: tarfile.TarInfo | None = None  # whose data _pending collects
        self._overrides: dict[str, str] = {}
        self._sparse = False

    @property
    def between(self) -> bool:
        """Whether the bytes fed so far end right before a header (or the end)."""
        return not (self._skip or self._pending or self._extended)

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """The bytes taken: all of them, or up to the end-of-archive block."""
        view, pos, size = memoryview(data), 0, len(data)
        while pos < size and not self.finished:
            if self._skip:
                step = min(self._skip, size - pos)
                if self._data and self.on_data is not None:
                    part = min(step, self._data)
                    self._data -= part
                    self.on_data(view[pos : pos + part])
                self._skip -= step
                pos += step
                continue
            step = min(self._need - len(self._pending), size - pos)
            self._pending += view[pos : pos + step]
            pos += step
            if len(self._pending) == self._need:
                self.offset = self._fed + pos
                collected = bytes(self._pending)
                self._pending.clear()
                if self._extended is not None:
                    self._extension(self._extended, collected)
                else:
                    self._header(collected)
        self._fed += pos
        return pos

    def end(self) -> None:
        """The stream ended: refused unless the end-of-archive block was read."""
        if not self.finished:
            raise TarProblem("truncated: the tree ends before its end-of-archive blocks")

    def _header(self, block: bytes) -> None:
        if block == ZERO:
            if self._overrides or self._sparse:
                raise TarProblem("truncated: an extended header with no entry after it")
            self.finished = True
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise TarProblem(f"corrupt tar header after {self.count} entries: {exc}") from None
        if info.size < 0:
            raise TarProblem("a header with a negative size", info.name)
        if info.type in _EXTENDED or info.type in _LONG:
            if info.size > MAX_EXTENDED:
                raise TarProblem(f"an extended header of {info.size} bytes (too large)")
            self._extended, self._need = info, _blocks(info.size)
            if self._need == 0:
                self._extension(info, b"")
            return
        self._entry(info)

    def _extension(self, info: tarfile.TarInfo, data: bytes) -> None:
        self._extended, self._need = None, BLOCK
        body = data[: info.size]
        if info.type in _LONG:
            key = "path" if info.type == tarfile.GNUTYPE_LONGNAME else "linkpath"
            name = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            self._overrides.setdefault(key, name)
            return
        records = _pax_records(body)
        if info.type == tarfile.XGLTYPE:
            if any(k in records for k in _RENAMING) or any(
                k.startswith("GNU.sparse") for k in records
            ):
                raise TarProblem("a global pax header that renames or resizes entries")
            return
        for key, value in records.items():
            if key.startswith("GNU.sparse."):
                self._sparse = True
            elif key in _RENAMING:
                self._overrides.setdefault(key, value)

    def _entry(self, info: tarfile.TarInfo) -> None:
        overrides, sparse = self._overrides, self._sparse or info.type == tarfile.GNUTYPE_SPARSE
        self._overrides, self._sparse = {}, False
        if "path" in overrides:
            info.name = overrides["path"]
        if "linkpath" in overrides:
            info.linkname = overrides["linkpath"]
        if "size" in overrides:
            try:
                info.size = int(overrides["size"])
            except ValueError:
                raise TarProblem("a pax size that is no number", info.name) from None
            if info.size < 0:
                raise TarProblem("a header with a negative size", info.name)
        if info.isdir():
            info.name = info.name.rstrip("/")
        if sparse:
            raise TarProblem("a sparse file (kato's trees store files in full)", info.name)
        self.count += 1
        self.on_entry(info)
        if info.isreg() or info.type not in tarfile.SUPPORTED_TYPES:
            self._skip = _blocks(info.size)
            self._data = info.size if info.isreg() else 0
        elif info.size:
            raise TarProblem("a link, directory or device entry carrying data", info.name)


def _pax_records(body: bytes) -> dict[str, str]:
    """`LENGTH KEY=VALUE\\n` records, as POSIX defines them (values decoded UTF-8, any other
    byte kept as a surrogate, as tarfile does)."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(body) and body[pos] != 0:
        space = body.find(b" ", pos, pos + 21)
        try:
            length = int(body[pos:space]) if space > pos else 0
        except ValueError:
            length = 0
        record = body[pos : pos + length]
        if length <= space - pos + 1 or len(record) < length or not record.endswith(b"\n"):
            raise TarProblem("a malformed pax extended header")
        key, equals, value = record[space - pos + 1 : -1].partition(b"=")
        if not equals:
            raise TarProblem("a malformed pax extended header")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records
