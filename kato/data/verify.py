"""`kato data verify`: read an archive back whole and trust nothing it says until it checks out.
The archive is decompressed in this process (tar_stream.py) and checked as it passes, piece
by piece (archive_check.py): zstd and sha256 run in C over buffers nothing copies."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kato.config import DataLimits
from kato.data import limits
from kato.data.archive_check import ArchiveCheck, Visit
from kato.data.invalid import ArchiveInvalid as ArchiveInvalid
from kato.data.manifest import Manifest
from kato.data.tar_stream import Corrupt, TarStream
from kato.data.tree_check import check_tree as check_tree
from kato.progress import Progress

CHUNK = 1 << 20


@dataclass(frozen=True)
class VerifyResult:
    path: str
    manifest: Manifest
    members: int
    bytes: int  # the members' bytes, uncompressed
    entries: int  # files, dirs and links in the tree members
    tree_entries: dict[str, int] = field(default_factory=dict)  # per tree member


__all__ = ("ArchiveInvalid", "HashingReader", "VerifyResult", "Visit", "check_tree")


def verify_archive(
    path: Path | str,
    *,
    progress: Progress | None = None,
    visit: Visit | None = None,
    within: DataLimits = limits.UNLIMITED,
    name: str | None = None,
) -> VerifyResult:
    """Every member present, listed, of the listed size and sha256, and every tree safe.
    `visit(member, stream)` may read each stream member as it passes (e.g. to deep-check a
    dump). `within`: the expansion is checked from the manifest before any data is read, the
    entries as they pass (LimitExceeded, exit 7). `name`: what to call the archive in errors
    (`-` for a spooled standard input)."""
    real, shown = str(path), name or str(path)
    check = ArchiveCheck(shown, real, within, progress, visit)
    _run(check)
    assert check.manifest is not None
    return VerifyResult(
        shown, check.manifest, len(check.seen), check.total, check.entries, check.trees
    )


def read_manifest(path: Path | str, name: str | None = None) -> Manifest:
    """The archive's manifest alone (its first member), checked as verify_archive does."""
    check = ArchiveCheck(name or str(path), str(path), manifest_only=True)
    _run(check)
    assert check.manifest is not None
    return check.manifest


def _run(check: ArchiveCheck) -> None:
    """The archive's tar stream through `check`, piece by piece, as it is decompressed."""
    if not Path(check.real).is_file():
        raise ArchiveInvalid(check.shown, "archive", "no such file")
    try:
        file = open(check.real, "rb", buffering=0)  # noqa: SIM115 (the with below closes it)
    except OSError as exc:  # unreadable: not verified (so never counted, nor deleted by --keep)
        raise ArchiveInvalid(check.shown, "archive", f"cannot be read: {exc.strerror}") from None
    with file:
        stream = TarStream(file)
        try:
            for piece in stream.pieces():
                check.feed(piece)
                if check.done:
                    return
        except Corrupt as exc:
            where = check.blame(stream.failed_at(check.position))
            raise ArchiveInvalid(check.shown, where, f"truncated or corrupt: {exc}") from None
        except OSError as exc:  # a failing disk: what was read so far proves nothing
            where = check.blame(check.position)
            raise ArchiveInvalid(check.shown, where, f"reading failed: {exc.strerror}") from None
        finally:
            check.close()
    check.end()


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
