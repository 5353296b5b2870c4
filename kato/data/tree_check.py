"""Whether a tree member (a data dir's tar) is safe to extract, checked as its bytes pass in
chunks: plain names inside the data dir, no devices, no links out, and no more entries than
the limit (and, for format 2, exactly the entries its manifest lists). One check for
`kato data verify`, export's read-back and import's member check."""

from __future__ import annotations

from typing import IO

from kato.config import DataLimits
from kato.data import limits
from kato.data.invalid import ArchiveInvalid
from kato.remote.tree_safety import TreeWalk, Unsafe

CHUNK = 1 << 20


class TreeCheck:
    """Feed it the tree's bytes (`feed`), then `finish()` for its entry count. Raises
    ArchiveInvalid naming the first unsafe entry, or LimitExceeded past `within` (counting
    the `before` entries of the trees ahead of it). The check itself is
    kato/remote/tree_safety.py's TreeWalk, which the node's import program runs too."""

    def __init__(
        self,
        member: str,
        path: str,
        within: DataLimits = limits.UNLIMITED,
        before: int = 0,
        listed: int | None = None,
    ) -> None:
        self.member, self.path, self.within, self.before = member, path, within, before
        self.walk = TreeWalk(listed, self._count)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self.walk.feed(data)
        except Unsafe as exc:
            raise invalid(self.path, self.member, exc) from None

    def finish(self) -> int:
        try:
            return self.walk.finish()
        except Unsafe as exc:
            raise invalid(self.path, self.member, exc) from None

    def _count(self, count: int) -> None:
        if self.before + count > self.within.max_entries:
            raise limits.too_many_entries(self.path, self.member, self.within)


def invalid(path: str, member: str, exc: Unsafe) -> ArchiveInvalid:
    """The refusal of a member's unsafe tree, naming its first bad entry."""
    return ArchiveInvalid(path, f"{member}: {exc.entry}" if exc.entry else member, exc.problem)


def check_tree(
    stream: IO[bytes],
    member: str,
    path: str,
    within: DataLimits = limits.UNLIMITED,
    before: int = 0,
    listed: int | None = None,
) -> int:
    """TreeCheck over a whole stream, read to its end; the tree's entry count."""
    check = TreeCheck(member, path, within, before, listed)
    while chunk := stream.read(CHUNK):
        check.feed(chunk)
    return check.finish()
