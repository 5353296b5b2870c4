"""`kato data verify`: read an archive back whole and trust nothing it says until it checks out."""

from __future__ import annotations

import gzip
import hashlib
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kato.data import archive
from kato.data import manifest as manifest_
from kato.data.manifest import Manifest, ManifestProblem, Member
from kato.errors import ExitCode, KatoError
from kato.progress import Progress, SilentProgress
from kato.transport import local

MAX_ENTRIES = 10_000_000  # files in one data dir tree
MAX_NAME = 4096
CHUNK = 1 << 20


class ArchiveInvalid(KatoError):
    """The archive is incomplete, corrupt or unsafe; `member` is the first bad one."""

    exit_code = ExitCode.ARCHIVE_INVALID

    def __init__(self, path: str, member: str, problem: str) -> None:
        super().__init__(
            f"{path}: {member}: {problem}",
            hint="this archive cannot be trusted: use another one "
            "(`kato data backups DIR` lists archives with their verify status)",
        )
        self.path, self.member, self.problem = path, member, problem


@dataclass(frozen=True)
class VerifyResult:
    path: str
    manifest: Manifest
    members: int
    bytes: int  # the members' bytes, uncompressed
    entries: int  # files, dirs and links in the tree members


Visit = Callable[[Member, IO[bytes]], None]


def verify_archive(
    path: Path | str, *, progress: Progress | None = None, visit: Visit | None = None
) -> VerifyResult:
    """Every member present, listed, of the listed size and sha256, and every tree safe.
    `visit(member, stream)` may read each member as it passes (e.g. to deep-check a dump)."""
    shown, progress = str(path), progress or SilentProgress()
    if not Path(shown).is_file():
        raise ArchiveInvalid(shown, "archive", "no such file")
    current = "archive"
    try:
        with archive.reading(shown) as stream:
            tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 (closed with stream)
            manifest = _manifest(tar, shown)
            seen: set[str] = set()
            total = entries = 0
            while (info := tar.next()) is not None:
                tar.members = []  # type: ignore[attr-defined]  # else memory grows per member
                current = info.name
                member = _listed(manifest, info, seen, shown)
                progress.detail(f"{member.name} ({member.size} bytes)")
                entries += _check_member(tar, info, member, shown, visit)
                total += member.size
                current = "archive"
            _trailing(stream, shown)
    except ArchiveInvalid:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, local.FilterFailed) as exc:
        raise ArchiveInvalid(shown, current, f"truncated or corrupt: {exc}") from None
    missing = [m.name for m in manifest.members if m.name not in seen]
    if missing:
        raise ArchiveInvalid(shown, missing[0], "listed in the manifest but missing")
    return VerifyResult(shown, manifest, len(seen), total, entries)


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


class _Hashing:
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
    tar: tarfile.TarFile, info: tarfile.TarInfo, member: Member, path: str, visit: Visit | None
) -> int:
    source = tar.extractfile(info)
    assert source is not None
    reader = _Hashing(source)
    entries = 0
    if member.type == "tree":
        entries = check_tree(reader, f"{member.name}", path)  # type: ignore[arg-type]
    elif visit is not None:
        visit(member, reader)  # type: ignore[arg-type]
    reader.drain()
    if reader.size != member.size:
        raise ArchiveInvalid(path, member.name, f"ends after {reader.size} of {member.size} bytes")
    if reader.sha.hexdigest() != member.sha256:
        raise ArchiveInvalid(path, member.name, "sha256 does not match the manifest: corrupt")
    return entries


def check_tree(stream: IO[bytes], member: str, path: str) -> int:
    """A data dir's tar is safe to extract: plain names inside it, no devices, no links out."""
    names: set[bytes] = set()
    count = 0
    with tarfile.open(fileobj=stream, mode="r|") as inner:
        while (entry := inner.next()) is not None:
            inner.members = []  # type: ignore[attr-defined]  # else memory grows per file
            count += 1
            if count > MAX_ENTRIES:
                raise ArchiveInvalid(path, member, f"more than {MAX_ENTRIES} entries")
            problem = entry_problem(entry, names)
            if problem:
                raise ArchiveInvalid(path, f"{member}: {entry.name}", problem)
    return count


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


def entry_problem(entry: tarfile.TarInfo, names: set[bytes]) -> str | None:
    clean = clean_name(entry.name)
    if clean is None:
        return "unsafe path (absolute, '..' or too long)"
    if clean == "" and not entry.isdir():
        return "the data dir itself must be a directory"
    key = _key(clean)
    if key in names:
        return "duplicate name"
    names.add(key)
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
    if entry.islnk():
        target_name = clean_name(entry.linkname)
        if target_name is None or _key(target_name) not in names:
            return f"hard link to {entry.linkname!r}, which is not earlier in the data dir"
    return None


def _trailing(stream: IO[bytes], path: str) -> None:
    """After the end of the tar stream only zeros may follow (and reading to the end lets the
    decompressor report a corrupt or truncated frame)."""
    while chunk := stream.read(CHUNK):
        if chunk.strip(b"\0"):
            raise ArchiveInvalid(path, "archive", "data after the end of the archive")
