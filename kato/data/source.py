"""Where `kato data import` reads an archive from: a file, standard input, or a live cluster
(`ssh://[user@]host[:port]`, whose own kato exports to us). Anything but a file is first
copied to a private local file, because nothing is imported before the whole archive checks;
so is an off-site archive (`REMOTE:PATH/NAME`, through rclone)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from kato.config import Cluster
from kato.connect import ssh_options
from kato.data import offsite
from kato.errors import HostKeyRefused, KatoError, UsageError
from kato.progress import Progress
from kato.transport.pool import ssh_factory


@dataclass(frozen=True)
class RemoteCluster:
    user: str | None
    host: str
    port: int

    @property
    def shown(self) -> str:
        return f"ssh://{self.user + '@' if self.user else ''}{self.host}:{self.port}"


def parse_remote(source: str) -> RemoteCluster | None:
    """ssh://[user@]host[:port] → RemoteCluster; None for anything else."""
    if not source.startswith("ssh://"):
        return None
    try:
        parts = urlsplit(source)
        port = parts.port or 22
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}", hint="write it as ssh://[user@]host[:port]") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.password:
        raise UsageError(
            f"{source} is not ssh://[user@]host[:port]",
            hint="name the old cluster's core node, e.g. ssh://root@old-core:22",
        )
    return RemoteCluster(parts.username, parts.hostname, port)


@contextmanager
def local_archive(
    cluster: Cluster,
    source: str,
    *,
    only: Sequence[str],
    stdin: BinaryIO | None,
    spool: Path | None,
    progress: Progress,
) -> Iterator[Path]:
    """A local file holding the archive for the duration of the block."""
    remote = parse_remote(source)
    stored = offsite.parse_location(source) if remote is None else None
    if stored is not None:
        progress.step(f"downloading {source}")
        with offsite.fetched(cluster, source, spool) as path:
            yield path
        return
    if remote is None and source != "-":
        yield archive_file(source)
        return
    directory = spool or Path(tempfile.gettempdir())
    try:
        spooled = tempfile.NamedTemporaryFile(  # noqa: SIM115 (the with below closes it)
            dir=directory, prefix=".kato-import-", suffix=".spool"
        )
    except OSError as exc:
        raise _spool_failed(directory, exc) from None
    with spooled as f:
        try:
            if remote is None:
                assert stdin is not None
                progress.step("reading the archive from standard input")
                shutil.copyfileobj(stdin, f, 1 << 20)
            else:
                _fetch(cluster, remote, only, f, progress)  # type: ignore[arg-type]
            f.flush()
        except OSError as exc:  # the spool's disk is full, or gone
            raise _spool_failed(directory, exc) from None
        yield Path(f.name)


def _spool_failed(directory: Path, exc: OSError) -> KatoError:
    return KatoError(
        f"keeping the archive in {directory} failed: {exc.strerror}; nothing was imported "
        "and the partial copy is removed",
        hint="give --spool a directory with room for the whole archive (it is verified "
        "whole before any node changes)",
    )


def archive_file(source: str) -> Path:
    """The archive's path when it names a readable regular file; else a usage error that
    says what it names instead."""
    path = Path(source)
    hint = "give the path of an archive file (`kato data backups DIR` lists them)"
    try:
        kind = path.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{source}: no such archive file", hint=hint) from None
    except OSError as exc:
        raise UsageError(f"{source}: {exc.strerror}", hint=hint) from None
    if stat.S_ISDIR(kind):
        raise UsageError(f"{source} is a directory, not an archive file", hint=hint)
    if not stat.S_ISREG(kind):
        raise UsageError(f"{source} is not a regular file (a device, pipe or socket)", hint=hint)
    if not os.access(path, os.R_OK):
        raise UsageError(f"{source}: permission denied", hint="run kato as a user who can read it")
    return path


def _fetch(
    cluster: Cluster, remote: RemoteCluster, only: Sequence[str], sink: BinaryIO, p: Progress
) -> None:
    """Run `kato data export -` on the remote core node and copy the archive it writes."""
    options = ssh_options(cluster)
    if remote.user:
        options = type(options)(**{**options.__dict__, "user": remote.user})
    argv = ["kato", "data", "export", "-"]
    if only:
        argv += ["--only", ",".join(only)]  # the name every kato knows (--role is newer)
    p.step(f"exporting from {remote.shown} (its kato: {' '.join(argv)})")
    try:
        transport = ssh_factory(remote.host, remote.host, remote.port, options)
    except HostKeyRefused as exc:
        raise HostKeyRefused(
            remote.host,
            exc.reason,
            exc.fingerprint,
            hint=f"check that fingerprint with the old cluster's admin, then add the key to "
            f"{options.known_hosts} (e.g. from `ssh-keyscan -p {remote.port} {remote.host}`)",
        ) from None
    try:
        done = transport.stream_out(argv, sink)
    finally:
        transport.close()
    if done.status != 0:
        last = done.error_line
        raise KatoError(
            f"{remote.shown}: the export there failed (exit {done.status}): {last}",
            hint="run `kato data export` on that node to see why; nothing here was changed",
        )
