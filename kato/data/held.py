"""A member's decompressed bytes as export's read-back sees them pass (kato/data/readback.py):
hashed, and a tree walked, as they come, except the last 511 bytes seen, which may be the tar
padding until the member's size is known at its end."""

from __future__ import annotations

import hashlib

from kato.data.archive import BLOCK
from kato.data.tree_check import TreeCheck


class Held:
    """The decompressed member as it passes, in chunks: every byte but the last 511 seen is
    hashed (and, for a tree, walked) at once; those may be the tar padding, since the
    member's size is known only at its end. One hashlib call per chunk, no copy of it."""

    HOLD = BLOCK - 1

    def __init__(self, tree: TreeCheck | None) -> None:
        self.sha, self.tree, self.total, self.held = hashlib.sha256(), tree, 0, b""

    def push(self, chunk: memoryview) -> None:
        self.total += len(chunk)
        if len(chunk) >= self.HOLD:
            self._release(self.held)
            self._release(chunk[: len(chunk) - self.HOLD])
            self.held = bytes(chunk[len(chunk) - self.HOLD :])
        else:
            joined = self.held + chunk
            cut = max(0, len(joined) - self.HOLD)
            self._release(joined[:cut])
            self.held = joined[cut:]

    def _release(self, data: bytes | memoryview) -> None:
        if data:
            self.sha.update(data)
            if self.tree is not None:
                self.tree.feed(data)

    def digest(self, size: int) -> tuple[str, bool]:
        """(sha256 of the first `size` bytes, whether everything after them is zeros); the
        tree, if any, gets its last bytes."""
        hashed = self.total - len(self.held)
        if size < hashed:
            return "", False
        self._release(self.held[: size - hashed])
        return self.sha.hexdigest(), not self.held[size - hashed :].strip(b"\0")
