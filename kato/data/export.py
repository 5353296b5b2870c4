"""`kato data export`: the chosen data dirs streamed from the nodes into one verified archive."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from kato import __version__, role_definitions
from kato.config import Cluster, DataLimits
from kato.connect import connections
from kato.data import archive, core_export, limits, node_export
from kato.data.core_export import read_argv
from kato.data.limits import LimitExceeded, expansion_over, resolved
from kato.data.manifest import FORMAT, MAX_MEMBERS, Manifest
from kato.data.selection import DataDir, data_dirs, not_defined
from kato.data.survey import DirFacts, dir_facts, survey
from kato.data.verify import ArchiveInvalid, verify_archive
from kato.errors import KatoError, PreflightRefused, ToolMissing, UsageError
from kato.operation import Operation, operation
from kato.progress import Progress, SilentProgress
from kato.transport import local
from kato.transport.pool import Connections

# Compressed archives are assumed to need at least this share of the data's size on disk.
SPACE_SHARE = {"none": 1.0, "gzip": 0.33, "zstd": 0.33}


@dataclass(frozen=True)
class PlannedRead:
    source: DataDir
    estimate: int

    @property
    def argv(self) -> tuple[str, ...]:
        return read_argv(self.source)


@dataclass
class ExportResult:
    path: str | None  # None in a dry run, or when written to stdout
    destination: str
    plan: tuple[PlannedRead, ...]
    manifest: Manifest | None = None
    bytes: int = 0  # the archive's size on disk
    data_bytes: int = 0  # the members' size, uncompressed
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def export(
    cluster: Cluster,
    dest: str,
    *,
    only: Sequence[str] = (),
    exclude: Sequence[str] = (),
    nodes: Sequence[str] = (),
    compress: str = "zstd",
    lock_wait: float = 0,
    dry_run: bool = False,
    command: Sequence[str] = (),
    progress: Progress | None = None,
    stdout: BinaryIO | None = None,
    max_entries: int | None = None,
) -> ExportResult:
    """Export, verify, publish under the final name (or copy to `stdout` for dest '-').
    The trees may hold at most `max_entries` entries in all (else the cluster file's
    data.max_entries): what an import accepts without raising its limit."""
    progress = progress or SilentProgress()
    within = replace(resolved(cluster.data, max_entries, None), max_ratio=float("inf"))
    _check_compression(compress)
    created = datetime.now(UTC).replace(microsecond=0)
    final, directory = destination(dest, cluster.name, created, compress)
    shown = str(final) if final else "standard output"
    with connections(cluster) as conns:
        progress.step("asking the nodes for their roles and data dirs")
        asked = survey(cluster, conns, nodes=nodes, only=only, exclude=exclude, measure=True)
        defined = asked.defined  # each node: its release's roles
        sources = asked.located(_chosen(cluster, defined, only, exclude, nodes))
        found = dir_facts(asked, conns, sources)
        plan = tuple(PlannedRead(s, found[s].size) for s in sources)
        check_space(directory, sum(p.estimate for p in plan), compress, dry_run)
        result = ExportResult(None, shown, plan)
        result.warnings.extend(
            f"{pair.replace(' ', ': role ', 1)} is in the cluster file but its release there does "
            "not define it (not installed?): it has no data in this archive"
            for pair in not_defined(cluster, defined, only=only, exclude=exclude, nodes=nodes)
        )
        if dry_run:
            return result
        version = asked.version
        with operation(conns, cluster.core_node.name, command, lock_wait=lock_wait) as op:
            if lock_wait:  # it may have waited: named and stamped when its data is read
                created = datetime.now(UTC).replace(microsecond=0)
                final, directory = destination(dest, cluster.name, created, compress)
                result.destination = str(final) if final else "standard output"
            temp = _temporary(directory, final, cluster.name)
            started = time.monotonic()
            try:
                # format 2 lists each tree's entries, counted by the read-back of node
                # export; gzip and none (read back whole at the end) stay format 1
                fmt = FORMAT if compress == "zstd" else 1
                meta = Manifest(fmt, cluster.name, version, __version__, created.isoformat(), ())
                if compress == "zstd":
                    manifest = _from_nodes(conns, op, temp, meta, sources, found, progress,
                                           result, within)  # fmt: skip
                else:
                    manifest = _write(conns, op, temp, meta, sources, found, compress,
                                      progress, result)  # fmt: skip
                    progress.step(f"verifying the archive ({temp.stat().st_size} bytes)")
                    _verify_own(temp, within)
                result.bytes, result.manifest = temp.stat().st_size, manifest
                result.warnings.extend(_over_limits(manifest, result.bytes, cluster))
                _publish(temp, final, stdout)
            finally:
                temp.unlink(missing_ok=True)
            result.path = str(final) if final else None
            result.seconds = time.monotonic() - started
            result.data_bytes = sum(m.size for m in manifest.members)
            op.notes.extend(result.warnings)
    return result


def _over_limits(manifest: Manifest, size: int, cluster: Cluster) -> list[str]:
    """An archive kato wrote is complete and verified, but a sparse or very compressible data
    dir can make it declare more than `kato data verify` and `import` accept by default: say
    so now, not at restore time."""
    over = expansion_over(manifest, size, cluster.data)
    if over is None:
        return []
    ratio = math.ceil(sum(m.size for m in manifest.members) / max(size, 1))
    return [
        f"the archive {over}: it is complete and verified, but `kato data verify` and "
        f"`kato data import` refuse it unless given --max-ratio {ratio} (or data.max_ratio: "
        f"{ratio} in the cluster file)"
    ]


def _chosen(
    cluster: Cluster,
    defined: role_definitions.ClusterRoles,
    only: Sequence[str],
    exclude: Sequence[str],
    nodes: Sequence[str],
) -> tuple[DataDir, ...]:
    """The data dirs to export, as each node's release declares them (a usage error when
    there is none, or more than one archive holds)."""
    sources = data_dirs(cluster, defined, only=only, exclude=exclude, nodes=nodes)
    if not sources:
        raise UsageError(
            "nothing to export: none of the chosen nodes carries a role with data",
            hint="check --node, --role and --exclude against `kato status`",
        )
    if len(sources) > MAX_MEMBERS:
        raise UsageError(
            f"{len(sources)} data dirs to export, more than one archive holds ({MAX_MEMBERS})",
            hint="split the export with --node or --role",
        )
    return sources


def _check_compression(compress: str) -> None:
    if compress not in archive.COMPRESSIONS:
        raise UsageError(
            f"--compress {compress!r} is not one of {', '.join(archive.COMPRESSIONS)}",
            hint="zstd is the default and fastest",
        )
    if compress == "zstd" and local.which("zstd") is None:
        raise ToolMissing("zstd", "zstd")


def destination(
    dest: str, cluster: str, created: datetime, compress: str
) -> tuple[Path | None, Path]:
    """(final path or None for stdout, the directory the temporary file goes to)."""
    if dest == "-":
        return None, Path(tempfile.gettempdir())
    path = Path(dest)
    final = path / archive.archive_name(cluster, created, compress) if path.is_dir() else path
    if not final.parent.is_dir():
        raise UsageError(
            f"{final.parent} is not a directory", hint="create it first, or choose another DEST"
        )
    if final.exists() or final.is_symlink():
        raise UsageError(
            f"{final} exists: export never overwrites a file",
            hint="choose another name, or give a directory and export picks a new name",
        )
    return final, final.parent


def check_space(directory: Path, estimate: int, compress: str, dry_run: bool) -> None:
    need = int(estimate * SPACE_SHARE[compress])
    free = shutil.disk_usage(directory).free
    if free < need and not dry_run:
        raise PreflightRefused(
            f"not enough space in {directory}: {free // 2**20} MiB free, the export needs "
            f"about {need // 2**20} MiB ({estimate // 2**20} MiB of data, {compress})",
            hint="free some space or export to another directory; nothing was written",
        )


def _temporary(directory: Path, final: Path | None, cluster: str) -> Path:
    name = final.name if final else f"{cluster}-export"
    temp = directory / f".{name}.kato-partial-{os.getpid()}"
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return temp


def _write(
    conns: Connections,
    op: Operation,
    temp: Path,
    meta: Manifest,
    sources: Sequence[DataDir],
    found: dict[DataDir, DirFacts],
    compress: str,
    progress: Progress,
    result: ExportResult,
) -> Manifest:
    """The nodes send raw bytes; kato hashes and compresses them here (core_export)."""
    facts = {s: (found[s].mode, found[s].owner) for s in sources}
    try:
        return core_export.write(conns, op, temp, meta, sources, facts, compress, progress,
                                 result.warnings)  # fmt: skip
    except archive.ArchiveWriteFailed as exc:
        raise _write_failed(temp, exc) from None


def _from_nodes(
    conns: Connections,
    op: Operation,
    temp: Path,
    meta: Manifest,
    sources: Sequence[DataDir],
    found: dict[DataDir, DirFacts],
    progress: Progress,
    result: ExportResult,
    within: DataLimits,
) -> Manifest:
    """The nodes read, hash and compress; kato assembles and reads back (node_export)."""
    facts = {s: (found[s].mode, found[s].owner) for s in sources}
    try:
        return node_export.write(conns, op, temp, meta, sources, facts, progress,
                                 result.warnings, within)  # fmt: skip
    except archive.ArchiveWriteFailed as exc:
        raise _write_failed(temp, exc) from None
    except ArchiveInvalid as exc:
        raise _not_verified(exc) from None


def _write_failed(temp: Path, exc: archive.ArchiveWriteFailed) -> KatoError:
    return KatoError(
        f"writing {temp.parent} failed: {exc.strerror or exc}",
        hint="free space there (or export elsewhere) and run the export again; "
        "no archive was published and older archives are untouched",
    )


def _not_verified(exc: ArchiveInvalid) -> KatoError:
    return KatoError(
        f"the archive just written does not verify: {exc.member}: {exc.problem}",
        hint="nothing was published; if a data dir holds what is not data (a device node, a "
        "fifo) or a link pointing out of it, move that out of the data dir and export again",
    )


def _verify_own(temp: Path, within: DataLimits) -> None:
    try:
        verify_archive(temp, within=within)
    except LimitExceeded:
        raise limits.export_too_many_entries(str(temp), within) from None
    except ArchiveInvalid as exc:
        raise _not_verified(exc) from None


def _publish(temp: Path, final: Path | None, stdout: BinaryIO | None) -> None:
    if final is None:
        assert stdout is not None
        with temp.open("rb") as source:
            shutil.copyfileobj(source, stdout, 1 << 20)
        stdout.flush()
        return
    try:
        os.link(temp, final)  # atomic, and never replaces a file that appeared meanwhile
    except FileExistsError:
        raise UsageError(
            f"{final} appeared while the export ran; it was left alone",
            hint="export again under another name, or into a directory",
        ) from None
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
