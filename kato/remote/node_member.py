"""The node's check of one archive member while node_data.py stages it: the member's bytes
(zstd's output, read once, in the pass that feeds tar) are hashed and, for a tree, walked
header by header (tree_safety.py: plain names inside the data dir, no devices, no links out,
exactly the entries its manifest lists); only zeros may follow its `size` bytes (the padding
and the archive's end blocks). Standard library only: shipped beside node_data.py.

The problems and their words are those of `kato data verify`, so the core turns them into the
same refusal (ArchiveInvalid, exit 6). A problem is named once, in this order: an unsafe entry
(found as it passed), zstd's failure, a member cut short, a tree's end (entry count, links
out through other links), the sha256, data after the end."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kato.remote.tree_safety import TreeWalk, Unsafe
else:
    try:  # kato/remote/tree_safety.py: beside this file on a node, a module of kato here
        _safety = importlib.import_module("tree_safety")
    except ImportError:
        _safety = importlib.import_module("kato.remote.tree_safety")
    TreeWalk, Unsafe = _safety.TreeWalk, _safety.Unsafe

CHUNK = 1 << 20
Problem = tuple[str | None, str]  # (the tree's entry or None, what is wrong)


class MemberCheck:
    """Fed by the staging pass: `look` each chunk of the member's bytes as it passes, then
    `passed(size, sha256)` and `after(fd)` for what follows; `result()` is the first problem."""

    Refusal = Unsafe  # what look() raises, for a caller that loads this module by name

    def __init__(self, kind: str, size: int, sha256: str, listed: int | None) -> None:
        self.size, self.sha256 = size, sha256
        self.tree = TreeWalk(listed) if kind == "tree" else None
        self.seen, self.digest = 0, ""
        self.trailing = False
        self.found: Problem | None = None  # seen while the bytes passed: tar is stopped
        self.broken: Problem | None = None  # zstd could not decompress the member

    def look(self, chunk: memoryview) -> None:
        """The member's next bytes (raises Unsafe at a tree's first bad entry)."""
        if self.tree is not None:
            self.tree.feed(chunk)

    def passed(self, size: int, digest: str) -> None:
        self.seen, self.digest = size, digest

    def after(self, fd: int) -> None:
        """Read what follows the member's bytes to its end: only zeros may."""
        buffer = bytearray(CHUNK)
        while count := os.readv(fd, [buffer]):
            if not self.trailing and buffer.count(0, 0, count) != count:
                self.trailing = True

    def refuse(self, exc: Unsafe) -> None:
        if self.found is None:
            self.found = (exc.entry, exc.problem)

    def unpacked(self, failure: str) -> None:
        """zstd failed (its last words): the member's compressed bytes are corrupt."""
        self.broken = (None, f"corrupt: {failure}")

    def result(self) -> Problem | None:
        if self.found is not None or self.broken is not None:
            return self.found or self.broken
        if self.seen < self.size:
            return None, f"ends after {self.seen} of {self.size} bytes"
        if self.tree is not None:
            try:
                self.tree.finish()
            except Unsafe as exc:
                return exc.entry, exc.problem
        if self.digest != self.sha256:
            return None, "sha256 does not match the manifest: corrupt"
        if self.trailing:
            return None, "data after the member's end"
        return None
