"""The checks of `kato data verify`, made on the decompressed tar stream as it passes in pieces:
the outer tar is walked by its headers (TarWalk, as a tree member is), and each member's data
goes straight from the decompressor's buffer to hashlib (one call per piece) and, for a tree,
to TreeCheck. Nothing trusts the manifest until it checks out: the manifest first, every member
listed once at its listed size and sha256, every tree safe, only zeros after the end."""

from __future__ import annotations

import hashlib
import os
import tarfile
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import IO

from kato.config import DataLimits
from kato.data import limits
from kato.data import manifest as manifest_
from kato.data.invalid import ArchiveInvalid
from kato.data.manifest import Manifest, ManifestProblem, Member
from kato.data.tree_check import TreeCheck
from kato.progress import Progress, SilentProgress
from kato.remote.tar_walk import BLOCK, TarProblem, TarWalk

Visit = Callable[[Member, IO[bytes]], None]
CHUNK = 1 << 20


class _Enough(Exception):
    """Only the manifest was asked for, and it was read."""


class ArchiveCheck:
    """Feed it the tar stream (`feed`), then `end()`. `position`: the bytes fed so far;
    `blame(offset)`: the member whose bytes (data and padding) hold an offset of the stream.
    `manifest_only`: stop (`done`) once the manifest is read, checking nothing after it."""

    def __init__(
        self,
        shown: str,
        real: str,
        within: DataLimits = limits.UNLIMITED,
        progress: Progress | None = None,
        visit: Visit | None = None,
        manifest_only: bool = False,
    ) -> None:
        self.shown, self.real, self.within, self.visit = shown, real, within, visit
        self.progress, self.manifest_only = progress or SilentProgress(), manifest_only
        self.walk = TarWalk(self._entry, self._data)
        self.manifest: Manifest | None = None
        self.position = 0
        self.done = False
        self.seen: set[str] = set()
        self.total = self.entries = 0  # the members' bytes, the trees' entries
        self.trees: dict[str, int] = {}
        self._body: bytearray | None = None  # the manifest's, while it passes
        self._size = 0  # the manifest's
        self._member: _Open | None = None
        self._regions: list[tuple[int, int, str]] = []  # [start, end) in the stream

    def feed(self, piece: memoryview) -> None:
        taken = 0
        try:
            if not self.walk.finished:
                taken = self.walk.feed(piece)
        except _Enough:
            return
        except TarProblem as exc:
            if self.done:
                return
            where = manifest_.NAME if self.manifest is None else "archive"
            raise ArchiveInvalid(self.shown, where, f"truncated or corrupt: {exc}") from None
        finally:
            self.position += len(piece)
        if not self.done and taken < len(piece) and bytes(piece[taken:]).strip(b"\0"):
            raise ArchiveInvalid(self.shown, "archive", "data after the end of the archive")

    def end(self) -> None:
        """The stream ended: refused if it ends inside a member or a header, or without the
        manifest or a member it lists."""
        if self.done:
            return
        if self.position == 0:
            raise ArchiveInvalid(self.shown, manifest_.NAME, "truncated or corrupt: empty file")
        if not self.walk.between:  # GNU tar reads a tar without end blocks; so does kato
            raise ArchiveInvalid(
                self.shown,
                self.blame(self.position),
                "truncated or corrupt: the archive ends inside a member or header",
            )
        if self.manifest is None:
            raise ArchiveInvalid(
                self.shown, manifest_.NAME, "must be the first member (found nothing)"
            )
        missing = [m.name for m in self.manifest.members if m.name not in self.seen]
        if missing:
            raise ArchiveInvalid(self.shown, missing[0], "listed in the manifest but missing")

    def close(self) -> None:
        """Stop a visit still reading (after an error)."""
        if self._member is not None and self._member.visiting is not None:
            self._member.visiting.abandon()

    def blame(self, offset: int) -> str:
        if not self._regions:
            return manifest_.NAME  # the first thing read, where an early cut shows
        found = (name for start, end, name in self._regions if start <= offset < end)
        return next(found, "archive")  # a header or the end: not a member yet

    def _entry(self, info: tarfile.TarInfo) -> None:
        start = self.walk.offset
        if self.manifest is None:
            self._first(info)
            self._regions.append((0, start + -info.size % BLOCK + info.size, manifest_.NAME))
            self._body, self._size = bytearray(), info.size
            if not info.size:
                self._manifest_read()
            return
        if self.manifest_only:
            raise _Enough
        member = self._listed(self.manifest, info)
        self.progress.detail(f"{member.name} ({member.size} bytes)")
        self._regions.append((start, start + -info.size % BLOCK + info.size, info.name))
        tree = None
        if member.type == "tree":
            tree = TreeCheck(member.name, self.shown, self.within, self.entries, member.entries)
        visiting = _Visiting(self.visit, member) if self.visit and not tree else None
        self._member = _Open(member, tree, visiting)
        if not info.size:
            self._close()

    def _data(self, piece: memoryview) -> None:
        if self._body is not None:
            self._body += piece
            if len(self._body) == self._size:
                self._manifest_read()
            return
        assert self._member is not None
        self._member.feed(piece)
        if self._member.size == self._member.member.size:
            self._close()

    def _first(self, info: tarfile.TarInfo) -> None:
        if info.name != manifest_.NAME:
            raise ArchiveInvalid(
                self.shown, manifest_.NAME, f"must be the first member (found {info.name})"
            )
        if not info.isreg() or info.size > manifest_.SLOT:
            raise ArchiveInvalid(
                self.shown, manifest_.NAME, "not a regular file of a manifest's size"
            )

    def _manifest_read(self) -> None:
        assert self._body is not None
        try:
            self.manifest = manifest_.decode(bytes(self._body))
        except ManifestProblem as exc:
            raise ArchiveInvalid(self.shown, manifest_.NAME, str(exc)) from None
        self._body = None
        if self.manifest_only:
            self.done = True
            return
        limits.check_expansion(self.manifest, self.real, self.within, self.shown)
        limits.check_entries(self.manifest, self.within, self.shown)

    def _listed(self, manifest: Manifest, info: tarfile.TarInfo) -> Member:
        shown, name = self.shown, info.name
        member = manifest.member(name)
        if member is None:
            raise ArchiveInvalid(shown, name, "not listed in the manifest")
        if name in self.seen:
            raise ArchiveInvalid(shown, name, "appears twice in the archive")
        if not info.isreg():
            raise ArchiveInvalid(shown, name, "not a regular file")
        if info.size != member.size:
            raise ArchiveInvalid(
                shown, name, f"is {info.size} bytes, the manifest says {member.size}"
            )
        self.seen.add(name)
        return member

    def _close(self) -> None:
        done, self._member = self._member, None
        assert done is not None
        member = done.member
        counted = done.tree.finish() if done.tree is not None else 0
        if done.visiting is not None:
            done.visiting.finish()
        if done.sha.hexdigest() != member.sha256:
            raise ArchiveInvalid(
                self.shown, member.name, "sha256 does not match the manifest: corrupt"
            )
        if done.tree is not None:
            self.trees[member.name] = counted
        self.entries += counted
        self.total += member.size


class _Open:
    """A member whose data is passing: hashed, and walked if a tree or read if visited."""

    def __init__(self, member: Member, tree: TreeCheck | None, visiting: _Visiting | None):
        self.member, self.tree, self.visiting = member, tree, visiting
        self.sha, self.size = hashlib.sha256(), 0

    def feed(self, piece: memoryview) -> None:
        self.sha.update(piece)
        self.size += len(piece)
        if self.tree is not None:
            self.tree.feed(piece)
        if self.visiting is not None:
            self.visiting.feed(piece)


class _Visiting:
    """`visit(member, stream)` reads the member in a thread, from a pipe the check writes
    the member's pieces into (a visit pulls, the check pushes); what the visit leaves unread
    is drained there, so the check never waits on it."""

    def __init__(self, visit: Visit, member: Member) -> None:
        readable, self._pipe = os.pipe()
        self._stream = os.fdopen(readable, "rb")
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(visit, member), daemon=True)
        self._thread.start()

    def _run(self, visit: Visit, member: Member) -> None:
        try:
            visit(member, self._stream)
        except BaseException as exc:  # noqa: BLE001 (raised by finish, in the checking thread)
            self._error = exc
        finally:
            with suppress(OSError, ValueError):
                while self._stream.read(CHUNK):
                    pass
            self._stream.close()

    def feed(self, piece: memoryview) -> None:
        while piece:
            piece = piece[os.write(self._pipe, piece) :]

    def finish(self) -> None:
        self.abandon()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        if self._pipe >= 0:
            os.close(self._pipe)
            self._pipe = -1
        self._thread.join()
