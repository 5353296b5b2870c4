"""`kato data backups DIR`: the archives export made in a directory, their size, age and health."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kato.errors import UsageError
from kato.progress import Progress, SilentProgress

# path -> None when the archive verifies, else what is wrong with it
Verifier = Callable[[Path], str | None]


@dataclass(frozen=True)
class Found:
    """An archive export named: its file, cluster and creation time (from its name)."""

    path: Path
    cluster: str
    created: datetime


@dataclass(frozen=True)
class Backup:
    name: str
    path: str
    cluster: str
    created: str  # UTC, 2026-11-22T03:00:00Z
    bytes: int
    age_seconds: float
    verified: bool | None  # None: not checked (--no-verify)
    status: str  # "ok", "not verified", or what is wrong with it


@dataclass(frozen=True)
class BackupList:
    directory: str
    backups: tuple[Backup, ...]

    @property
    def invalid(self) -> tuple[Backup, ...]:
        return tuple(b for b in self.backups if b.verified is False)


def find_archives(directory: Path) -> list[Found]:
    """The archives export made in `directory`, newest first. Other files, and the hidden
    partial files of an export still running, are not archives."""
    from kato.data.archive import parse_archive_name

    if not directory.is_dir():
        raise UsageError(
            f"{directory} is not a directory", hint="name the directory export writes to"
        )
    found: list[Found] = []
    for path in directory.iterdir():
        parsed = None if path.name.startswith(".") else parse_archive_name(path.name)
        if parsed is not None and path.is_file():
            found.append(Found(path, parsed[0], parsed[1]))
    return sorted(found, key=lambda f: (f.created, f.path.name), reverse=True)


def verify_problem(path: Path) -> str | None:
    """None when the archive verifies, else its ArchiveInvalid's `member: problem`."""
    from kato.data.verify import ArchiveInvalid, verify_archive

    try:
        verify_archive(path)
    except ArchiveInvalid as exc:
        return f"{exc.member}: {exc.problem}"
    return None


def list_backups(
    directory: Path,
    *,
    verify: bool = True,
    verifier: Verifier = verify_problem,
    progress: Progress | None = None,
    now: float | None = None,
) -> BackupList:
    """Every archive in `directory`, newest first, verified unless told not to."""
    now = time.time() if now is None else now
    progress = progress or SilentProgress()
    backups = []
    for found in find_archives(directory):
        problem = None
        if verify:
            progress.step(f"verifying {found.path.name}")
            problem = verifier(found.path)
        backups.append(_backup(found, verify, problem, now))
    return BackupList(str(directory), tuple(backups))


def _backup(found: Found, verified: bool, problem: str | None, now: float) -> Backup:
    try:
        size = found.path.stat().st_size
    except FileNotFoundError:  # deleted while we looked
        size, problem = 0, "archive: no such file"
    return Backup(
        name=found.path.name,
        path=str(found.path),
        cluster=found.cluster,
        created=found.created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        bytes=size,
        age_seconds=round(max(0.0, now - found.created.timestamp()), 3),
        verified=(problem is None) if verified else None,
        status=("ok" if problem is None else problem) if verified else "not verified",
    )
