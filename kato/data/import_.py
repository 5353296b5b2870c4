"""`kato data import`: an archive's members staged on their target nodes while the whole
archive is verified, then switched in role by role (role stopped, data dir swapped or loaded,
role started and healthy). Any failure puts every switched data dir back; the previous data
stays until `kato data cleanup`."""

from __future__ import annotations

import tarfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from kato import facts
from kato.config import Cluster
from kato.data import archive, node_import, switch
from kato.data.manifest import Manifest
from kato.data.placement import Placement, place
from kato.data.source import local_archive
from kato.data.verify import HashingReader, read_manifest, verify_archive
from kato.engine.session import session
from kato.errors import KatoError, NodeUnreachable, PreflightRefused
from kato.operation import Operation
from kato.progress import Progress, SilentProgress
from kato.roles import load_roles
from kato.status import roles_directory
from kato.transport.pool import Connections

STAGE_TREE = (
    'set -eu; umask 077; mkdir -p "$1"; chmod 0700 "$1"; mkdir "$2"; '
    'exec tar --extract --file=- --directory="$2" --numeric-owner --same-owner '
    "--preserve-permissions"
)
STAGE_DUMP = (
    'set -eu; umask 077; mkdir -p "$1"; chmod 0700 "$1"; cat >"$2"; '
    'printf "%s  %s\\n" "$3" "$2" | sha256sum --check --status || '
    '{ echo "the staged copy does not match the archive (sha256)" >&2; exit 1; }'
)


@dataclass
class ImportResult:
    source: str
    run: str
    placements: tuple[Placement, ...]
    dry_run: bool
    notes: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0


def import_archive(
    cluster: Cluster,
    source: str,
    *,
    only: Sequence[str] = (),
    nodes: Sequence[str] = (),
    lock_wait: float = 0,
    dry_run: bool = False,
    command: Sequence[str] = (),
    progress: Progress | None = None,
    stdin: BinaryIO | None = None,
    spool: Path | None = None,
) -> ImportResult:
    """Stage every member while the whole archive is verified, then switch role by role."""
    progress = progress or SilentProgress()
    roles = load_roles(roles_directory())
    started = time.monotonic()
    with local_archive(
        cluster, source, only=only, stdin=stdin, spool=spool, progress=progress
    ) as path:
        manifest = read_manifest(path)  # the whole archive is verified below, before any switch
        run = uuid.uuid4().hex[:12]
        placements = place(manifest, cluster, roles, run, only=only, nodes=nodes)
        result = ImportResult(source, run, placements, dry_run)
        with session(cluster, command, lock_wait=lock_wait, progress=progress) as s:
            _compare_versions(s.conns, cluster, manifest, result)
            _check_space(s.conns, placements)
            if dry_run:
                progress.step(f"verifying {source}")
                verify_archive(path, progress=progress)
                return result
            try:
                _stage_verifying(s.conns, s.begin(), path, manifest, placements, progress, source)
                switch.switch_all(s, placements, roles)
            finally:
                switch.unstage(s.conns, placements)
            s.op.notes.extend(result.notes)
    result.bytes = sum(p.member.size for p in placements)
    result.seconds = time.monotonic() - started
    return result


def _compare_versions(
    conns: Connections, cluster: Cluster, manifest: Manifest, result: ImportResult
) -> None:
    here = facts.platform_version.gather(conns.get(cluster.core_node.name))
    there = manifest.platform_version
    if here != there:
        result.notes.append(
            f"the archive comes from platform {there or 'unknown'} "
            f"(cluster {manifest.cluster}); {cluster.name} runs {here or 'unknown'}"
        )


def _stage_verifying(
    conns: Connections,
    op: Operation,
    path: Path,
    manifest: Manifest,
    placements: Sequence[Placement],
    progress: Progress,
    source: str,
) -> None:
    """Stage while another thread verifies the whole archive: staging touches only private
    staging dirs, and nothing is switched unless both succeed. The verdict on the archive
    comes first: an invalid archive is exit 6 even when its staging failed too."""
    verdict: list[BaseException] = []

    def check() -> None:
        try:
            verify_archive(path)
        except BaseException as exc:  # noqa: BLE001 (raised below, in the calling thread)
            verdict.append(exc)

    progress.step(f"verifying {source} while staging")
    checker = threading.Thread(target=check, name="kato-verify", daemon=True)
    checker.start()
    try:
        _stage(conns, op, path, manifest, placements, progress)
    except KeyboardInterrupt:
        raise
    except BaseException:
        checker.join()
        if verdict:
            raise verdict[0] from None
        raise
    progress.step(f"finishing the verification of {source}")
    checker.join()
    if verdict:
        raise verdict[0]


def _check_space(conns: Connections, placements: Sequence[Placement]) -> None:
    """Each target filesystem must hold the staged copy (twice that for a dump: the staged
    file and the loaded data); the previous data is renamed, not copied."""
    for node in dict.fromkeys(p.target.node for p in placements):
        mine = [p for p in placements if p.target.node == node]
        free = facts.free_space([p.parent for p in mine]).gather(conns.get(node))
        need: dict[str, int] = {}
        for p in mine:
            need[p.parent] = need.get(p.parent, 0) + p.member.size * (
                1 if p.member.type == "tree" else 2
            )
        for parent, bytes_needed in need.items():
            available = int(free.get(parent, {}).get("free", 0))
            if available < bytes_needed:
                raise PreflightRefused(
                    f"{node}: {parent} has {available // 2**20} MiB free, the import needs "
                    f"about {bytes_needed // 2**20} MiB there",
                    hint="free space on that filesystem (or relocate the data dir); "
                    "nothing was changed",
                )


def _stage(
    conns: Connections,
    op: Operation,
    path: Path,
    manifest: Manifest,
    placements: Sequence[Placement],
    progress: Progress,
) -> None:
    """Copy each member into its private staging dir on the target node's data filesystem:
    compressed when the archive allows (node_import), else decompressed here."""
    where = node_import.regions(path, manifest)
    if where is not None:
        node_import.stage(conns, op, path, placements, where, progress)
        return
    by_name = {p.member.name: p for p in placements}
    with archive.reading(str(path)) as stream:
        tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 (closed with stream)
        for info in archive.members(tar):
            placement = by_name.get(info.name)
            if placement is None:
                continue
            extracted = tar.extractfile(info)
            assert extracted is not None
            _stage_one(conns, op, placement, HashingReader(extracted), progress)
        while stream.read(1 << 20):
            pass


def _stage_one(
    conns: Connections, op: Operation, p: Placement, reader: HashingReader, progress: Progress
) -> None:
    node, member = p.target.node, p.member
    progress.step(f"{node}: staging {member.name} in {p.staging_dir}")
    if member.type == "tree":
        argv: tuple[str, ...] = ("sh", "-c", STAGE_TREE, "sh", p.staging_dir, p.staged)
    else:
        argv = ("sh", "-c", STAGE_DUMP, "sh", p.staging_dir, p.staged, member.sha256)
    done = conns.get(node).stream_in(argv, reader)  # type: ignore[arg-type]
    reader.drain()
    if reader.sha.hexdigest() != member.sha256:
        raise KatoError(
            f"{member.name} changed since it was verified",
            hint="the archive file was modified during the import; nothing was switched",
        )
    if done.status < 0:
        raise NodeUnreachable(node, "transfer", "the connection closed while staging")
    if not done.ok:
        last = done.error_line
        raise KatoError(
            f"{node}: staging {member.name} failed: {last}",
            hint="nothing was switched; fix the cause and import again",
        )
    op.step(node, f"stage {member.name} in {p.staged}", None, "ok", done.seconds, bytes=member.size)
