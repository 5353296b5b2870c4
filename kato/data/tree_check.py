"""Whether a tree member (a data dir's tar) is safe to extract, checked as its bytes pass in
chunks: plain names inside the data dir, no devices, no links out, and no more entries than
the limit (and, for format 2, exactly the entries its manifest lists). One check for
`kato data verify`, export's read-back and import's member check."""

from __future__ import annotations

import tarfile
from typing import IO

from kato.config import DataLimits
from kato.data import limits
from kato.data.invalid import ArchiveInvalid
from kato.data.tar_walk import TarProblem, TarWalk
from kato.data.tree_safety import Seen, entry_problem, link_escaping

CHUNK = 1 << 20


class TreeCheck:
    """Feed it the tree's bytes (`feed`), then `finish()` for its entry count. Raises
    ArchiveInvalid naming the first unsafe entry, or LimitExceeded past `within` (counting
    the `before` entries of the trees ahead of it)."""

    def __init__(
        self,
        member: str,
        path: str,
        within: DataLimits = limits.UNLIMITED,
        before: int = 0,
        listed: int | None = None,
    ) -> None:
        self.member, self.path, self.within, self.before, self.listed = (
            member, path, within, before, listed,
        )  # fmt: skip
        self.seen = Seen()
        self.walk = TarWalk(self._entry)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self.walk.feed(data)
        except TarProblem as exc:
            raise self._corrupt(exc) from None

    def finish(self) -> int:
        try:
            self.walk.end()
        except TarProblem as exc:
            raise self._corrupt(exc) from None
        count = self.walk.count
        if self.listed is not None and count != self.listed:
            raise self._not_as_listed(f"{count}, not the {self.listed}")
        escaping = link_escaping(self.seen.links)
        if escaping:
            raise ArchiveInvalid(
                self.path,
                f"{self.member}: {escaping}",
                f"symlink to {self.seen.links[escaping]!r} points outside the data dir "
                "(through the tree's other symlinks)",
            )
        return count

    def _entry(self, entry: tarfile.TarInfo) -> None:
        count = self.walk.count
        if self.listed is not None and count > self.listed:
            raise self._not_as_listed(f"more than the {self.listed}")
        if self.before + count > self.within.max_entries:
            raise limits.too_many_entries(self.path, self.member, self.within)
        problem = entry_problem(entry, self.seen)
        if problem:
            raise ArchiveInvalid(self.path, f"{self.member}: {entry.name}", problem)

    def _corrupt(self, exc: TarProblem) -> ArchiveInvalid:
        where = f"{self.member}: {exc.entry}" if exc.entry else self.member
        return ArchiveInvalid(self.path, where, f"truncated or corrupt: {exc}")

    def _not_as_listed(self, found: str) -> ArchiveInvalid:
        return ArchiveInvalid(
            self.path,
            self.member,
            f"holds {found} files, dirs and links its manifest lists: tampered",
        )


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
