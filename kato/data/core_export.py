"""Export with the work here (`--compress gzip` or `none`): each node sends its data dirs' raw
bytes (GNU tar, or the role's dump), one after the other; kato hashes them and compresses them
into the archive as they come."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from kato.data import archive
from kato.data.manifest import Manifest, Member
from kato.data.node_export import ExportFailed
from kato.data.selection import DataDir
from kato.data.writeback import WriteBack
from kato.errors import NodeUnreachable
from kato.operation import Operation
from kato.progress import Progress
from kato.transport.base import CommandResult
from kato.transport.pool import Connections

# GNU tar: numeric owners, modes, symlinks and any file name; a stable order; no atime/ctime.
TREE_ARGV = (
    "tar", "--create", "--file=-", "--format=posix", "--numeric-owner", "--sort=name",
    "--pax-option=delete=atime,delete=ctime", "--directory",
)  # fmt: skip


def read_argv(source: DataDir) -> tuple[str, ...]:
    if source.spec.kind == "tree":
        return (*TREE_ARGV, source.path, ".")
    return source.spec.dump


def write(
    conns: Connections,
    op: Operation,
    temp: Path,
    meta: Manifest,
    sources: Sequence[DataDir],
    facts: dict[DataDir, tuple[str, str]],
    compress: str,
    progress: Progress,
    warnings: list[str],
) -> Manifest:
    """Fill `temp` with the archive of `sources` (facts: each one's mode and owner); the
    caller verifies it whole."""
    created = int(datetime.fromisoformat(meta.created).timestamp())
    with temp.open("r+b") as file, WriteBack(file.fileno()):
        writer = archive.ArchiveWriter(file, compress, created)
        members = tuple(_read(conns, op, writer, s, facts[s], progress, warnings) for s in sources)
        manifest = Manifest(meta.format, meta.cluster, meta.platform_version,
                            meta.kato_version, meta.created, members)  # fmt: skip
        writer.finish(manifest)
    return manifest


class _Tap:
    """Passes bytes to the archive, hashing and counting them, and shows progress."""

    def __init__(self, sink: archive.Sink, source: DataDir, progress: Progress) -> None:
        self.sink, self.source, self.progress = sink, source, progress
        self.sha, self.size, self._shown = hashlib.sha256(), 0, time.monotonic()

    def write(self, data: bytes) -> int:
        self.sink.write(data)
        self.sha.update(data)
        self.size += len(data)
        if time.monotonic() - self._shown > 0.5:
            self._shown = time.monotonic()
            self.progress.detail(f"{self.source.shown}: {self.size / 2**20:.0f} MiB")
        return len(data)


def _read(
    conns: Connections,
    op: Operation,
    writer: archive.ArchiveWriter,
    source: DataDir,
    dir_facts: tuple[str, str],
    progress: Progress,
    warnings: list[str],
) -> Member:
    progress.step(f"{source.node}: {source.role} {source.data_dir} ({source.path})")
    argv = read_argv(source)
    taps: list[_Tap] = []
    outcome: list[CommandResult] = []

    def fill(sink: archive.Sink) -> None:
        tap = _Tap(sink, source, progress)
        taps.append(tap)
        outcome.append(conns.get(source.node).stream_out(argv, tap))  # type: ignore[arg-type]

    writer.add(source.member, fill)
    done, tap = outcome[0], taps[0]
    _judge(source, done, warnings)
    op.step(source.node, f"export {source.role} {source.data_dir}", argv, "ok", done.seconds,
            bytes=tap.size)  # fmt: skip
    return Member(source.member, source.node, source.role, source.data_dir, source.path,
                  source.spec.kind, tap.size, *dir_facts, tap.sha.hexdigest())  # fmt: skip


def _judge(source: DataDir, done: CommandResult, warnings: list[str]) -> None:
    last = done.error_line
    if done.status < 0:
        raise NodeUnreachable(source.node, "transfer", "the connection closed mid-export")
    if source.spec.kind == "tree" and done.status == 1:
        # GNU tar: some files changed while being read; the archive is whole, those files
        # hold whatever tar read.
        warnings.append(f"{source.shown}: files changed while read ({last})")
    elif done.status != 0:
        raise ExportFailed(source, f"`{' '.join(done.argv)}` exited {done.status}: {last}")
