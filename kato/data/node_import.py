"""Import's staging at the nodes' speed: each member goes to its node still compressed (its
frames as they lie in the archive, never decompressed here), where kato's data program
decompresses it, checks it (kato/remote/node_member.py: size, sha256, a tree's safety and
entry count, zeros after) and writes the staging dir in one pass. The nodes are staged
--parallel at once; a member that does not match its manifest entry fails the import before
anything is switched."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from kato.data import frames, stream
from kato.data.each_node import each_node, workers
from kato.data.invalid import ArchiveInvalid
from kato.data.manifest import Manifest, Member
from kato.data.placement import Placement
from kato.errors import KatoError, NodeUnreachable
from kato.operation import Operation
from kato.progress import Progress
from kato.transport.pool import Connections

CHUNK = 1 << 20


class Stopped(Exception):
    """Another node's staging failed: this one stops too."""


def regions(path: Path, manifest: Manifest) -> dict[str, tuple[int, int]] | None:
    """Each member's compressed bytes in a zstd archive laid out as kato writes it; None
    when the archive is not zstd or not laid out so (import then decompresses here)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if os.pread(fd, 4, 0) != b"\x28\xb5\x2f\xfd":
            return None
        found = frames.member_regions(fd, {m.name: m.size for m in manifest.members})
    except frames.FrameProblem:
        return None
    finally:
        os.close(fd)
    return found if len(found) == len(manifest.members) else None


class _Region:
    """stdin for the node's program: the member's bytes as they lie in the archive."""

    def __init__(self, fd: int, start: int, end: int, stop: threading.Event) -> None:
        self.fd, self.position, self.end, self.stop = fd, start, end, stop

    def read(self, size: int = -1) -> bytes:
        if self.stop.is_set():
            raise Stopped
        data = os.pread(self.fd, min(CHUNK, self.end - self.position), self.position)
        self.position += len(data)
        return data


Units = Mapping[tuple[str, str], Sequence[str]]
States = dict[tuple[str, str], dict[str, str]]


def stage(
    conns: Connections,
    op: Operation,
    path: Path,
    placements: Sequence[Placement],
    where: dict[str, tuple[int, int]],
    progress: Progress,
    shown: str | None = None,
    units: Units | None = None,
) -> States:
    """Stage every placement, conns.parallel nodes at once; the first failure is raised. `shown`
    (the archive's name): the archive was not verified beforehand (format 2), so a member that
    fails the node's check is refused as `kato data verify` refuses it (ArchiveInvalid).
    `units`: (node, role) -> its units, whose states each member's node reports as it stages
    (returned: (node, role) -> {unit: state}; a node that did not say is left out)."""
    nodes = list(dict.fromkeys(p.target.node for p in placements))
    # an unreachable node fails here, before anything is sent
    each_node(nodes, lambda node: stream.ready(conns.get(node)), conns.parallel)
    stop, failures = threading.Event(), []
    staged: dict[str, _Step] = {}
    states: States = {}
    asked = units or {}
    fd = os.open(path, os.O_RDONLY)

    def one_node(node: str) -> None:
        try:
            for p in placements:
                if stop.is_set():  # another node failed while this one waited its turn
                    return
                if p.target.node == node:
                    key = (node, p.target.role)
                    staged[p.member.name], seen = _stage_one(
                        conns, fd, p, where[p.member.name], stop, progress, shown,
                        asked.get(key, ()))  # fmt: skip
                    if seen is not None:
                        states[key] = seen
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 (raised below, in the calling thread)
            failures.append(exc)
            stop.set()

    threads = workers(nodes, one_node, conns.parallel, "kato-stage")
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException:
        stop.set()
        for thread in threads:
            thread.join()
        raise
    finally:
        os.close(fd)
        for p in placements:  # the journal is written by this thread only
            if p.member.name in staged:
                op.step(p.target.node, *staged[p.member.name])
    if failures:
        raise failures[0]
    return states


_Step = tuple[str, tuple[str, ...], str, float]


def _stage_one(
    conns: Connections,
    fd: int,
    p: Placement,
    region: tuple[int, int],
    stop: threading.Event,
    progress: Progress,
    shown: str | None,
    units: Sequence[str] = (),
) -> tuple[_Step, dict[str, str] | None]:
    """Stage one member; returns its journal step (description, argv, result, seconds) and
    the states of `units` as its node reported them."""
    node, member = p.target.node, p.member
    progress.step(f"{node}: staging {member.name} in {p.staging_dir}")
    listed = "-" if member.entries is None or member.type != "tree" else str(member.entries)
    args = ("import", member.type, p.staging_dir, p.staged, str(member.size), member.sha256,
            listed)  # fmt: skip
    done = conns.get(node).stream_in(stream.argv(*args, *units), _Region(fd, *region, stop))  # type: ignore[arg-type]
    if done.status < 0:
        raise NodeUnreachable(node, "transfer", "the connection closed while staging")
    answer = stream.answer(done)
    if answer is None:
        raise KatoError(
            f"{node}: staging {member.name} failed: {done.error_line}",
            hint="nothing was switched; fix the cause and import again",
        )
    if answer.status != 0:
        raise _refusal(node, member, answer, shown)
    step = (f"stage {member.name} in {p.staged}", stream.shown(*args), "ok", done.seconds)
    return step, answer.units


def _refusal(node: str, member: Member, answer: stream.NodeAnswer, shown: str | None) -> KatoError:
    """A member that failed the node's check: refused as verify refuses it (format 2, not
    verified beforehand), or as changed since it was verified; anything else (tar could not
    write, a full disk) is the node's failure."""
    where = f"{member.name}: {answer.entry}" if answer.entry else member.name
    if answer.invalid and shown is not None:
        return ArchiveInvalid(shown, where, answer.error)
    if answer.invalid:
        return KatoError(
            f"{node}: staging {where} failed: {answer.error}",
            hint="nothing was switched; the archive changed or was corrupted after it was "
            "verified: run `kato data verify` on it, then import again",
        )
    return KatoError(
        f"{node}: staging {member.name} failed: {answer.error}",
        hint="nothing was switched; fix the cause and import again",
    )
