"""Off-site copies of archives through rclone (Debian's package: S3-compatible storage, SFTP and
the other backends sysadmins already use), configured by the rclone config file the cluster file
names (`offsite: {rclone_config: PATH}`). An upload lands under a hidden partial name, is
checked (size, and a hash the backend reports, else read back whole), and only then gets its
final name: an archive under its final name off-site was verified when it was uploaded."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from kato.config import Cluster
from kato.data.archive import parse_archive_name
from kato.data.backups import Backup, BackupList
from kato.errors import KatoError, ToolMissing, UsageError
from kato.progress import Progress, SilentProgress
from kato.transport import local

# rclone's remote:path (the remote as its config names it); a local path with a colon in its
# first component must be written ./like:this
_LOCATION = re.compile(r"^(?P<remote>[A-Za-z0-9_][A-Za-z0-9_.-]*):(?P<path>.*)$")
# Fail in seconds rather than minutes when the remote is gone (rclone retries 3 x 10 by default)
_PATIENCE = ("--contimeout", "10s", "--timeout", "5m", "--retries", "2",
             "--low-level-retries", "2")  # fmt: skip
_HASHES = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256}
CHUNK = 1 << 20


class OffsiteFailed(KatoError):
    """rclone could not do what was asked: its own reason is in the message."""


@dataclass(frozen=True)
class Location:
    """A directory (or file) on an rclone remote: `remote:path`."""

    remote: str
    path: str

    def __str__(self) -> str:
        return f"{self.remote}:{self.path}"

    def join(self, name: str) -> str:
        return f"{self.remote}:{self.path.rstrip('/') + '/' if self.path else ''}{name}"


@dataclass(frozen=True)
class Upload:
    archive: str  # the local archive, which stays
    remote: str  # remote:path/NAME
    bytes: int
    check: str  # how the copy was checked: "size and md5", "read back (sha256)"


def parse_location(text: str) -> Location | None:
    """remote:path → Location; None for a local path (or ssh://, -)."""
    if "://" in text or text.startswith(("/", ".")):
        return None
    match = _LOCATION.match(text)
    return Location(match["remote"], match["path"]) if match else None


def rclone_base(cluster: Cluster) -> tuple[str, ...]:
    config = cluster.rclone_config
    if not config:
        raise UsageError(
            f"{cluster.path or 'the cluster file'} names no rclone config for off-site copies",
            hint="add `offsite: {rclone_config: /etc/kato/rclone.conf}` to the cluster file, "
            "with the remote defined in that file (`rclone config --config PATH`)",
        )
    if not Path(config).is_file():
        raise UsageError(
            f"the rclone config {config} (offsite.rclone_config) does not exist",
            hint="create it with `rclone config --config " + config + "`",
        )
    if local.which("rclone") is None:
        raise ToolMissing("rclone", "rclone")
    return ("rclone", "--config", config, *_PATIENCE)


def require_remote(cluster: Cluster, at: Location) -> None:
    """Refuse a remote the rclone config does not define before anything runs: a typo in
    `--to` would otherwise show only when the upload starts, after the whole export. rclone
    itself lists the remotes (a file's go by their exact name; an RCLONE_CONFIG_NAME_TYPE
    variable defines one too); when it cannot (an encrypted config without its password),
    the upload will say why."""
    done = local.run((*rclone_base(cluster), "listremotes"), timeout=60, check=False)
    if not done.ok:
        return
    names = {line.strip().removesuffix(":") for line in done.stdout.splitlines() if line.strip()}
    if at.remote in names or f"RCLONE_CONFIG_{at.remote.upper()}_TYPE" in os.environ:
        return
    raise UsageError(
        f"no remote named {at.remote!r} in the rclone config {cluster.rclone_config}; "
        "nothing was exported",
        hint=f"its remotes: {', '.join(sorted(names)) or 'none'}; add one with "
        f"`rclone config --config {cluster.rclone_config}`",
    )


def rclone(cluster: Cluster, *args: str, timeout: float = 24 * 3600.0) -> str:
    """rclone ARGS; its stdout, or OffsiteFailed with its last error line."""
    done = local.run((*rclone_base(cluster), *args), timeout=timeout, check=False)
    if not done.ok:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit {done.returncode}"
        raise OffsiteFailed(
            f"rclone {args[0]} failed: {_plain(reason)}",
            hint="check the remote (reachable, space left, credentials) with "
            f"`rclone about` / `rclone lsd` and the config {cluster.rclone_config}",
        )
    return done.stdout


def _plain(line: str) -> str:
    """rclone's log line without its date and level."""
    return re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ((ERROR|NOTICE|INFO|CRITICAL) *: *)?", "", line)


def stat(cluster: Cluster, remote: str) -> dict[str, Any]:
    """The backend's size and hashes of one file."""
    found = json.loads(rclone(cluster, "lsjson", "--stat", "--hash", remote) or "null")
    if not isinstance(found, dict):
        raise OffsiteFailed(f"{remote}: not found after the upload")
    return found


def upload(
    cluster: Cluster, archive: Path, to: Location, progress: Progress | None = None
) -> Upload:
    """Copy `archive` to `to` (a directory) under its own name; the local file stays."""
    progress = progress or SilentProgress()
    name = archive.name
    partial, final = to.join(f".{name}.kato-partial"), to.join(name)
    progress.step(f"uploading {name} to {to}")
    try:
        rclone(cluster, "copyto", str(archive), partial)
        progress.step(f"checking the copy at {partial}")
        check = _check(cluster, archive, partial)
        rclone(cluster, "moveto", partial, final)
    except BaseException:
        with suppress(KatoError):
            rclone(cluster, "deletefile", partial, timeout=120)
        raise
    if int(stat(cluster, final).get("Size", -1)) != archive.stat().st_size:
        raise OffsiteFailed(f"{final}: the size changed when it got its final name")
    return Upload(str(archive), final, archive.stat().st_size, check)


def _check(cluster: Cluster, archive: Path, remote: str) -> str:
    """The copy's size and a hash the backend reports, else a read-back, match the archive."""
    found = stat(cluster, remote)
    size = archive.stat().st_size
    if int(found.get("Size", -1)) != size:
        raise OffsiteFailed(
            f"{remote} has {found.get('Size')} bytes, the archive {size}",
            hint="the upload was cut short; the local archive is intact: upload it again",
        )
    theirs = {k: v for k, v in (found.get("Hashes") or {}).items() if k in _HASHES and v}
    if theirs:
        kind = sorted(theirs)[0]
        if file_hash(archive, kind) != theirs[kind]:
            raise OffsiteFailed(f"{remote}: {kind} differs from the archive's: the copy is bad")
        return f"size and {kind}"
    if read_back(cluster, remote) != file_hash(archive, "sha256"):
        raise OffsiteFailed(f"{remote}: read back with another sha256: the copy is bad")
    return "read back (sha256)"


def file_hash(path: Path, kind: str) -> str:
    digest = _HASHES[kind]()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_back(cluster: Cluster, remote: str) -> str:
    """sha256 of the remote file, read back through rclone."""
    digest = hashlib.sha256()
    with open(os.devnull, "rb") as nothing:
        try:
            with local.filter_from((*rclone_base(cluster), "cat", remote), nothing.fileno()) as out:
                while chunk := out.read(CHUNK):
                    digest.update(chunk)
        except local.FilterFailed as exc:
            raise OffsiteFailed(f"reading back {remote} failed: {exc.strerror}") from None
    return digest.hexdigest()


def listing(cluster: Cluster, at: Location) -> list[tuple[str, int, Any]]:
    """(name, size, created) of the archives export named at `at`, newest first."""
    entries = json.loads(rclone(cluster, "lsjson", "--files-only", str(at)) or "[]")
    found = []
    for entry in entries:
        name = str(entry.get("Name", ""))
        parsed = None if name.startswith(".") else parse_archive_name(name)
        if parsed is not None:
            found.append((name, int(entry.get("Size", 0)), parsed))
    return sorted(found, key=lambda f: (f[2][1], f[0]), reverse=True)


@contextmanager
def fetched(cluster: Cluster, remote: str, spool: Path | None) -> Iterator[Path]:
    """A private local copy of one off-site archive for the duration of the block."""
    import tempfile

    directory = spool or Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(dir=directory, prefix=".kato-offsite-") as scratch:
        path = Path(scratch) / remote.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        rclone(cluster, "copyto", remote, str(path))
        yield path


def list_offsite(
    cluster: Cluster,
    at: Location,
    *,
    verify: bool,
    spool: Path | None = None,
    progress: Progress | None = None,
) -> BackupList:
    """The archives at `at`, newest first; with `verify`, each one downloaded and verified
    whole (as `kato data verify`), else listed as uploaded (checked when it was uploaded)."""
    from kato.data.backups import verify_problem

    progress = progress or SilentProgress()
    now, backups = time.time(), []
    for name, size, (owner, created) in listing(cluster, at):
        status, verified = "uploaded, not read back", None
        if verify:
            progress.step(f"reading back {at.join(name)}")
            with fetched(cluster, at.join(name), spool) as path:
                problem = verify_problem(path)
            status, verified = problem or "ok", problem is None
        backups.append(
            Backup(
                name,
                at.join(name),
                owner,
                created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                size,
                round(max(0.0, now - created.timestamp()), 3),
                verified,
                status,
            )  # fmt: skip
        )
    return BackupList(str(at), tuple(backups))
