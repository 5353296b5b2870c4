"""`kato data import`: a verified archive's members staged on their target nodes, then switched
in role by role (role stopped, data dir swapped or loaded, role started and healthy). Any
failure puts every switched data dir back; the previous data stays until `kato data cleanup`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from kato import journal
from kato.config import Cluster, DataLimits
from kato.data import limits, local_stage, node_import, resume, switch, switch_ahead, switch_plan
from kato.data.manifest import Manifest
from kato.data.placement import Placement, place
from kato.data.source import local_archive
from kato.data.survey import Survey, free_beside, survey
from kato.data.verify import read_manifest, verify_archive
from kato.engine.session import Session, session
from kato.errors import KatoError
from kato.operation import Operation
from kato.progress import Progress, SilentProgress
from kato.transport.base import Transport
from kato.transport.pool import Connections

JOURNAL_LOOKBACK = 5000  # journal lines read for what interrupted imports left stopped


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
    within: DataLimits | None = None,
) -> ImportResult:
    """Check the archive within the limits (the cluster file's unless given), check each
    target's room, stage every member, then switch role by role. A format-2 archive is
    checked from its manifest first and each member verified while it stages; a format-1
    archive, and any archive in a dry run, is verified whole first."""
    progress = progress or SilentProgress()
    started = time.monotonic()
    with (
        session(cluster, command, lock_wait=lock_wait, dry_run=dry_run, progress=progress) as s,
        local_archive(
            cluster, source, only=only, stdin=stdin, spool=spool, progress=progress
        ) as path,
    ):
        result = import_file(s, path, source, within or cluster.data, only, nodes)
    result.bytes = sum(p.member.size for p in result.placements)
    result.seconds = time.monotonic() - started
    return result


def import_file(
    s: Session,
    path: Path,
    source: str,
    within: DataLimits,
    only: Sequence[str],
    nodes: Sequence[str],
) -> ImportResult:
    """The import inside its session, the archive a local file: the manifest first, so only
    the nodes its members go to (and the core node) are asked and connected to."""
    cluster, progress, dry_run = s.cluster, s.progress, s.dry_run
    progress.step(f"reading the manifest of {source}")
    manifest = read_manifest(path, source)
    progress.step("asking the nodes for their roles and data dirs")
    held = {m.role for m in manifest.members}
    asked = survey(cluster, s.conns, nodes=nodes, only=only, beside=True, holding=held)
    roles = asked.defined  # each node: its release's roles
    # a dry run verifies every byte: it answers "would this import succeed?"
    checked = preflight(path, source, within, progress, whole=dry_run, manifest=manifest)
    run = uuid.uuid4().hex[:12]
    placed = place(checked.manifest, cluster, roles, run, only=only, nodes=nodes)
    placements = relocated(asked, placed)
    result = ImportResult(source, run, placements, dry_run)
    _compare_versions(asked.version, cluster, checked.manifest, result)
    _check_room(asked, s.conns, placements, checked.entries)
    if dry_run:
        return result
    groups, ahead = switch_plan.groups(placements, roles), switch_ahead.Ahead()
    failure: KatoError | None = None
    try:
        # the switch's calls start (and wait, changing nothing) while the lock is taken
        ahead = switch_ahead.start(s.conns, groups)
        op, core = s.begin(), cluster.core_node.name
        # the journal is read on the core node while the members stage: under the lock no
        # other operation writes it, and this one's own lines do not count (resume)
        with ThreadPoolExecutor(1, thread_name_prefix="kato-journal-read") as reader:
            journaled = reader.submit(s.conns.call, core, _journal_tail)
            units = {(g.node, g.role.name): g.role.units for g in groups}
            ahead.states = _stage(s.conns, op, path, checked, placements, progress, units)
            left = _left_stopped(journaled.result(), op, placements, result)
        switch.switch_all(s, groups, left, ahead)
    except KatoError as exc:
        failure = exc
        raise
    finally:
        ahead.cancel()  # the standbys not used: they start nothing
        kept = switch.unstage(s.conns, groups)
        if failure is not None and kept:  # a node lost mid-way: what it keeps, the way on
            failure.hint = "; ".join(filter(None, (failure.hint, switch.kept_staging(kept))))
    s.op.notes.extend(result.notes)
    return result


@dataclass(frozen=True)
class Preflight:
    """What import knows of an archive before staging: its manifest, each tree's entries,
    where each member's compressed bytes lie (None: decompressed here), and whether its
    members still need their check while they stage (format 2) or were verified whole."""

    manifest: Manifest
    entries: dict[str, int]
    regions: dict[str, tuple[int, int]] | None
    shown: str
    check_while_staging: bool


def preflight(
    path: Path,
    source: str,
    within: DataLimits,
    progress: Progress,
    whole: bool = False,
    manifest: Manifest | None = None,
) -> Preflight:
    """Format 2 laid out as kato writes it: the limits from the manifest alone (the data is
    checked as it stages). Otherwise (format 1, or another layout), or `whole` (a dry run,
    which stages nothing to check it on), the whole archive is verified first, as
    `kato data verify` does. `manifest`: the archive's, read already."""
    if manifest is None:
        progress.step(f"reading the manifest of {source}")
        manifest = read_manifest(path, source)
    if manifest.format >= 2 and not whole:
        limits.check_expansion(manifest, str(path), within, source)
        limits.check_entries(manifest, within, source)
        where = node_import.regions(path, manifest)
        if where is not None:
            entries = {m.name: m.entries or 0 for m in manifest.members}
            return Preflight(manifest, entries, where, source, True)
    progress.step(f"verifying {source}")
    verified = verify_archive(path, progress=progress, within=within, name=source)
    where = node_import.regions(path, verified.manifest)
    return Preflight(verified.manifest, verified.tree_entries, where, source, False)


def relocated(asked: Survey, placements: Sequence[Placement]) -> tuple[Placement, ...]:
    """Each placement aimed at where its data dir lives now (kato relocate may have moved it)."""
    targets = asked.located([p.target for p in placements])
    return tuple(replace(p, target=t) for p, t in zip(placements, targets, strict=True))


def _journal_tail(core: Transport) -> list[dict[str, Any]]:
    return journal.read(core, JOURNAL_LOOKBACK)


def _left_stopped(
    entries: list[dict[str, Any]],
    op: Operation,
    placements: Sequence[Placement],
    result: ImportResult,
) -> dict[tuple[str, str], str]:
    """Roles an interrupted import left stopped (the journal's `entries`); those this import
    does not switch are named in a note, as their data dir may hold a half-loaded dump."""
    left = resume.left_stopped(entries, op.id)
    ours = {(p.target.node, p.target.role) for p in placements}
    for (node, role), stopper in sorted(left.items()):
        if (node, role) not in ours:
            result.notes.append(
                f"{node}: {role} was left stopped by the interrupted operation {stopper}; "
                "this import does not switch it: import it again (or put its previous data "
                "back from .kato-previous-*) and start it"
            )
    return left


def _compare_versions(
    here: str | None, cluster: Cluster, manifest: Manifest, result: ImportResult
) -> None:
    there = manifest.platform_version
    if here != there:
        result.notes.append(
            f"the archive comes from platform {there or 'unknown'} "
            f"(cluster {manifest.cluster}); {cluster.name} runs {here or 'unknown'}"
        )


def _check_room(
    asked: Survey,
    conns: Connections,
    placements: Sequence[Placement],
    entries: dict[str, int],
) -> None:
    """Each target filesystem must hold the staged copy (twice that for a dump: the staged
    file and the loaded data) and its entries, with a reserve; the previous data is renamed,
    not copied."""
    free_by_node = free_beside(asked, conns, [(p.target.node, p.parent) for p in placements])
    for node, free in free_by_node.items():
        mine = [p for p in placements if p.target.node == node]
        need: dict[str, tuple[int, int]] = {}
        for p in mine:
            size, inodes = need.get(p.parent, (0, 1))  # 1: the staging dir
            tree = p.member.type == "tree"
            need[p.parent] = (
                size + p.member.size * (1 if tree else 2),
                inodes + (entries.get(p.member.name, 0) if tree else 1),
            )
        for parent, (size, inodes) in need.items():
            limits.check_room(node, parent, free.get(parent, {}), size, inodes)


def _stage(
    conns: Connections,
    op: Operation,
    path: Path,
    checked: Preflight,
    placements: Sequence[Placement],
    progress: Progress,
    units: node_import.Units,
) -> node_import.States:
    """Copy each member into its private staging dir on the target node's data filesystem:
    compressed when the archive allows (node_import, which also reports the states of the
    `units`), else decompressed here (no states: the switch asks for them)."""
    if checked.regions is not None:
        shown = checked.shown if checked.check_while_staging else None
        return node_import.stage(conns, op, path, placements, checked.regions, progress, shown,
                                 units)  # fmt: skip
    local_stage.stage(conns, op, path, placements, progress)
    return {}
