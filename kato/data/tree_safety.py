"""Whether a data dir's tar is safe to extract, entry by entry: plain names inside the data
dir, no devices or fifos, hard links only to earlier files, symlinks that stay inside (followed
through the tree's other symlinks once the whole tree is known)."""

from __future__ import annotations

import hashlib
import posixpath
import tarfile

MAX_NAME = 4096


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
