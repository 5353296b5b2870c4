"""Whether a data dir's tar is safe to extract, entry by entry: plain names inside the data
dir, no devices or fifos, hard links only to earlier files, symlinks that stay inside (followed
through the tree's other symlinks once the whole tree is known), and (when its manifest lists
them) exactly the entries listed. Standard library only: the node's import program checks a
member with it (shipped beside it as tree_safety.py), and kato/data/tree_check.py wraps it for
verify, export's read-back and the limits."""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kato.remote.tar_walk import TarProblem, TarWalk
else:
    try:  # kato/remote/tar_walk.py: beside this file on a node, a module of kato here
        from tar_walk import TarProblem, TarWalk
    except ImportError:
        from kato.remote.tar_walk import TarProblem, TarWalk

MAX_NAME = 4096


class Unsafe(ValueError):
    """A tree that must not be extracted: `entry` is the first bad entry's name (None when the
    tree as a whole is wrong), `problem` says why."""

    def __init__(self, entry: str | None, problem: str) -> None:
        super().__init__(f"{entry}: {problem}" if entry else problem)
        self.entry, self.problem = entry, problem


class TreeWalk:
    """Feed it a tree's bytes in chunks of any size (`feed`), then `finish()` for its entry
    count; raises Unsafe at the first problem. `listed`: the entry count the manifest gives
    (format 2), checked as entries pass and at the end; `on_count(count)` is called for every
    entry before its own check (the caller's limits)."""

    def __init__(
        self, listed: int | None = None, on_count: Callable[[int], None] | None = None
    ) -> None:
        self.listed, self.on_count = listed, on_count
        self.seen = Seen()
        self.walk = TarWalk(self._entry)

    @property
    def count(self) -> int:
        return self.walk.count

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self.walk.feed(data)
        except TarProblem as exc:
            raise Unsafe(exc.entry, f"truncated or corrupt: {exc}") from None

    def finish(self) -> int:
        try:
            self.walk.end()
        except TarProblem as exc:
            raise Unsafe(exc.entry, f"truncated or corrupt: {exc}") from None
        count = self.walk.count
        if self.listed is not None and count != self.listed:
            raise _not_as_listed(f"{count}, not the {self.listed}")
        escaping = link_escaping(self.seen.links)
        if escaping:
            raise Unsafe(
                escaping,
                f"symlink to {self.seen.links[escaping]!r} points outside the data dir "
                "(through the tree's other symlinks)",
            )
        return count

    def _entry(self, entry: tarfile.TarInfo) -> None:
        count = self.walk.count
        if self.listed is not None and count > self.listed:
            raise _not_as_listed(f"more than the {self.listed}")
        if self.on_count is not None:
            self.on_count(count)
        problem = entry_problem(entry, self.seen)
        if problem:
            raise Unsafe(entry.name, problem)


def _not_as_listed(found: str) -> Unsafe:
    return Unsafe(None, f"holds {found} files, dirs and links its manifest lists: tampered")


class Seen:
    """What a tree held so far: 16-byte digests of every name and of directories, and the
    symlinks (name → target) to resolve once the whole tree is known."""

    def __init__(self) -> None:
        self.names: set[bytes] = set()
        self.dirs: set[bytes] = set()
        self.links: dict[str, str] = {}


def link_escaping(links: dict[str, str]) -> str | None:
    """The first symlink whose target, followed through the tree's other symlinks, leaves the
    data dir (or loops); None when all stay inside."""
    for name in sorted(links):
        if _resolve(name, links) is None:
            return name
    return None


def _resolve(name: str, links: dict[str, str], depth: int = 0) -> list[str] | None:
    """The path `name` points to, as components inside the data dir; None when it leaves."""
    if depth > 40:
        return None
    parts: list[str] = []
    for part in name.split("/")[:-1] + [""]:
        if part:
            resolved = _step(parts, part, links, depth)
            if resolved is None:
                return None
            parts = resolved
    target = links[name]
    current = parts
    for part in target.split("/"):
        resolved = _step(current, part, links, depth)
        if resolved is None:
            return None
        current = resolved
    return current


def _step(parts: list[str], part: str, links: dict[str, str], depth: int) -> list[str] | None:
    if part in ("", "."):
        return parts
    if part == "..":
        return parts[:-1] if parts else None
    joined = "/".join([*parts, part])
    if joined in links:
        return _resolve(joined, links, depth + 1)
    return [*parts, part]


def _key(name: str) -> bytes:
    return hashlib.blake2b(name.encode("utf-8", "surrogateescape"), digest_size=16).digest()


def clean_name(name: str) -> str | None:
    """The entry's path inside the data dir ('' for the dir itself), or None when unsafe."""
    if not name or len(name) > MAX_NAME or "\0" in name or name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


def entry_problem(entry: tarfile.TarInfo, seen: Seen) -> str | None:
    clean = clean_name(entry.name)
    if clean is None:
        return "unsafe path (absolute, '..' or too long)"
    if clean == "" and not entry.isdir():
        return "the data dir itself must be a directory"
    key = _key(clean)
    if key in seen.names:
        return "duplicate name"
    if entry.islnk():
        target_name = clean_name(entry.linkname)
        linked = _key(target_name) if target_name is not None else None
        if linked is None or linked not in seen.names:
            return f"hard link to {entry.linkname!r}, which is not earlier in the data dir"
        if linked in seen.dirs:
            return f"hard link to the directory {entry.linkname!r}"
    seen.names.add(key)
    if entry.isdir():
        seen.dirs.add(key)
    if entry.ischr() or entry.isblk():
        return "device node"
    if entry.isfifo():
        return "fifo (not data)"
    if not (entry.isreg() or entry.isdir() or entry.issym() or entry.islnk()):
        return "unsupported entry type"
    if entry.issym():
        target = entry.linkname
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(clean), target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            return f"symlink to {target!r} points outside the data dir"
        seen.links[clean] = target  # resolved through the others once the tree is read
    return None
