"""`kato data verify`: read an archive back whole and trust nothing it says until it checks out."""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kato.config import DataLimits
from kato.data import archive, limits
from kato.data import manifest as manifest_
from kato.data.gzip_members import GzipMembers
from kato.data.invalid import ArchiveInvalid as ArchiveInvalid
from kato.data.manifest import Manifest, ManifestProblem, Member
from kato.data.tree_check import check_tree
from kato.progress import Progress, SilentProgress
from kato.transport import local

CHUNK = 1 << 20


@dataclass(frozen=True)
class VerifyResult:
    path: str
    manifest: Manifest
    members: int
    bytes: int  # the members' bytes, uncompressed
    entries: int  # files, dirs and links in the tree members
    tree_entries: dict[str, int] = field(default_factory=dict)  # per tree member


Visit = Callable[[Member, IO[bytes]], None]


def verify_archive(
    path: Path | str,
    *,
    progress: Progress | None = None,
    visit: Visit | None = None,
    within: DataLimits = limits.UNLIMITED,
    name: str | None = None,
) -> VerifyResult:
    """Every member present, listed, of the listed size and sha256, and every tree safe.
    `visit(member, stream)` may read each member as it passes (e.g. to deep-check a dump).
    `within`: the expansion is checked from the manifest before any data is read, the
    entries as they pass (LimitExceeded, exit 7). `name`: what to call the archive in errors
    (`-` for a spooled standard input)."""
    real, shown, progress = str(path), name or str(path), progress or SilentProgress()
    if not Path(real).is_file():
        raise ArchiveInvalid(shown, "archive", "no such file")
    blame = _Blame()
    try:
        with archive.reading(real) as raw:
            blame.stream, stream = raw, _Recording(raw)
            tar = tarfile.open(fileobj=stream, mode="r|")  # type: ignore[call-overload]  # noqa: SIM115
            manifest = _manifest(tar, shown)
            blame.data(manifest_.NAME, 0, tar.offset)  # its header too: nothing precedes it
            blame.current = "archive"
            limits.check_expansion(manifest, real, within, shown)
            limits.check_entries(manifest, within, shown)
            seen: set[str] = set()
            total = entries = 0
            trees: dict[str, int] = {}
            for info in archive.members(tar):
                blame.data(info.name, info.offset_data, tar.offset)
                blame.current = info.name
                member = _listed(manifest, info, seen, shown)
                progress.detail(f"{member.name} ({member.size} bytes)")
                counted = _check_member(tar, info, member, shown, visit, within, entries)
                if member.type == "tree":
                    trees[member.name] = counted
                entries += counted
                total += member.size
                blame.current = "archive"
            _trailing(stream, tar.offset, shown)
    except ArchiveInvalid:
        raise
    except (tarfile.TarError, EOFError, zlib.error, local.FilterFailed) as exc:
        raise ArchiveInvalid(shown, blame.member(), f"truncated or corrupt: {exc}") from None
    missing = [m.name for m in manifest.members if m.name not in seen]
    if missing:
        raise ArchiveInvalid(shown, missing[0], "listed in the manifest but missing")
    return VerifyResult(shown, manifest, len(seen), total, entries, trees)


def read_manifest(path: Path | str, name: str | None = None) -> Manifest:
    """The archive's manifest alone (its first member), checked as verify_archive does."""
    shown = name or str(path)
    if not Path(path).is_file():
        raise ArchiveInvalid(shown, "archive", "no such file")
    found: Manifest | None = None
    try:
        with archive.reading(str(path)) as raw:
            tar = tarfile.open(fileobj=raw, mode="r|")  # noqa: SIM115
            found = _manifest(tar, shown)
    except local.FilterFailed as exc:
        if found is None:  # else: the decompressor, stopped early, said so (SIGPIPE)
            raise ArchiveInvalid(shown, manifest_.NAME, f"truncated or corrupt: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ArchiveInvalid(shown, manifest_.NAME, f"truncated or corrupt: {exc}") from None
    assert found is not None
    return found


def _manifest(tar: tarfile.TarFile, path: str) -> Manifest:
    first = tar.next()
    if first is None or first.name != manifest_.NAME:
        found = first.name if first else "nothing"
        raise ArchiveInvalid(path, manifest_.NAME, f"must be the first member (found {found})")
    if not first.isreg() or first.size > manifest_.SLOT:
        raise ArchiveInvalid(path, manifest_.NAME, "not a regular file of a manifest's size")
    body = tar.extractfile(first)
    assert body is not None
    try:
        return manifest_.decode(body.read())
    except ManifestProblem as exc:
        raise ArchiveInvalid(path, manifest_.NAME, str(exc)) from None


def _listed(manifest: Manifest, info: tarfile.TarInfo, seen: set[str], path: str) -> Member:
    member = manifest.member(info.name)
    if member is None:
        raise ArchiveInvalid(path, info.name, "not listed in the manifest")
    if info.name in seen:
        raise ArchiveInvalid(path, info.name, "appears twice in the archive")
    if not info.isreg():
        raise ArchiveInvalid(path, info.name, "not a regular file")
    if info.size != member.size:
        raise ArchiveInvalid(
            path, info.name, f"is {info.size} bytes, the manifest says {member.size}"
        )
    seen.add(info.name)
    return member


class HashingReader:
    """Reads through to `source`, hashing and counting every byte."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source, self.sha, self.size = source, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.sha.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def _check_member(
    tar: tarfile.TarFile,
    info: tarfile.TarInfo,
    member: Member,
    path: str,
    visit: Visit | None,
    within: DataLimits,
    before: int,
) -> int:
    source = tar.extractfile(info)
    assert source is not None
    reader = HashingReader(source)
    entries = 0
    if member.type == "tree":
        entries = check_tree(reader, member.name, path, within, before, member.entries)  # type: ignore[arg-type]
    elif visit is not None:
        visit(member, reader)  # type: ignore[arg-type]
    reader.drain()
    if reader.size != member.size:
        raise ArchiveInvalid(path, member.name, f"ends after {reader.size} of {member.size} bytes")
    if reader.sha.hexdigest() != member.sha256:
        raise ArchiveInvalid(path, member.name, "sha256 does not match the manifest: corrupt")
    return entries


class _Blame:
    """Which member a decompressor's error belongs to. tarfile reads ahead, so the member it was
    reading when the error surfaced (`current`) is only a guess. A gzip archive's reader says
    where in the tar stream the bad gzip member lies: the member whose data and padding hold
    that offset is blamed; a tar header or the end-of-archive blocks, the archive as a whole
    (a header is not a member yet)."""

    def __init__(self) -> None:
        self.current = manifest_.NAME  # the first thing read, where an early truncation shows
        self.stream: IO[bytes] | None = None
        self._regions: list[tuple[int, int, str]] = []  # [start, end) in the tar stream

    def data(self, name: str, start: int, end: int) -> None:
        """A member was read from its header: its data and padding lie at [start, end)."""
        self._regions.append((start, end, name))

    def member(self) -> str:
        at = self.stream.failed_at if isinstance(self.stream, GzipMembers) else None
        if at is None or not self._regions:
            return self.current
        return next((name for start, end, name in self._regions if start <= at < end), "archive")


class _Recording:
    """Reads through, remembering the position and the last two reads: tarfile reads ahead
    (at most one read of CHUNK), so what follows the end of the archive may already sit in
    its buffer."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source, self.position = source, 0
        self._last, self._before = b"", b""

    @property
    def tail(self) -> bytes:
        return self._before + self._last

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.position += len(data)
        if data:
            self._last, self._before = data, self._last
        return data


def _trailing(stream: _Recording, end: int, path: str) -> None:
    """After the end of the tar stream only zeros may follow (and reading to the end lets the
    decompressor report a corrupt or truncated frame)."""
    ahead = stream.position - end  # read by tarfile past the last member's end
    if ahead > len(stream.tail) or stream.tail[len(stream.tail) - max(ahead, 0) :].strip(b"\0"):
        raise ArchiveInvalid(path, "archive", "data after the end of the archive")
    while chunk := stream.read(CHUNK):
        if chunk.strip(b"\0"):
            raise ArchiveInvalid(path, "archive", "data after the end of the archive")
