"""Import's staging at the nodes' speed: each member goes to its node still compressed (its
frames as they lie in the archive), where kato's data program decompresses it, checks its
sha256 and writes the staging dir in one pass. The nodes are staged --parallel at once; a member
that does not match its manifest entry fails the import before anything is switched."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from kato.data import frames, stream
from kato.data.each_node import each_node, workers
from kato.data.manifest import Manifest
from kato.data.member_check import MemberCheck
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
    """stdin for the node's program: the member's bytes as they lie in the archive, passed to
    the member's check here as they go (format 2)."""

    def __init__(
        self, fd: int, start: int, end: int, stop: threading.Event, check: MemberCheck | None
    ) -> None:
        self.fd, self.position, self.end, self.stop, self.check = fd, start, end, stop, check

    def read(self, size: int = -1) -> bytes:
        if self.stop.is_set() or (self.check is not None and self.check.failed.is_set()):
            raise Stopped
        data = os.pread(self.fd, min(CHUNK, self.end - self.position), self.position)
        self.position += len(data)
        if self.check is not None and data:
            self.check.feed(data)
        return data


def stage(
    conns: Connections,
    op: Operation,
    path: Path,
    placements: Sequence[Placement],
    where: dict[str, tuple[int, int]],
    progress: Progress,
    shown: str | None = None,
) -> None:
    """Stage every placement, conns.parallel nodes at once; the first failure is raised. `shown`
    (the archive's name): check each member here while it streams (a format-2 archive not
    verified beforehand), as MemberCheck does."""
    nodes = list(dict.fromkeys(p.target.node for p in placements))
    # an unreachable node fails here, before anything is sent
    each_node(nodes, lambda node: stream.ready(conns.get(node)), conns.parallel)
    stop, failures = threading.Event(), []
    staged: dict[str, _Step] = {}
    fd = os.open(path, os.O_RDONLY)

    def one_node(node: str) -> None:
        try:
            for p in placements:
                if stop.is_set():  # another node failed while this one waited its turn
                    return
                if p.target.node == node:
                    staged[p.member.name] = _stage_one(conns, fd, p, where[p.member.name],
                                                       stop, progress, shown)  # fmt: skip
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


_Step = tuple[str, tuple[str, ...], str, float]


def _stage_one(
    conns: Connections,
    fd: int,
    p: Placement,
    region: tuple[int, int],
    stop: threading.Event,
    progress: Progress,
    shown: str | None,
) -> _Step:
    """Stage one member; returns its journal step (description, argv, result, seconds)."""
    node, member = p.target.node, p.member
    progress.step(f"{node}: staging {member.name} in {p.staging_dir}")
    args = ("import", member.type, p.staging_dir, p.staged, str(member.size), member.sha256)
    check = MemberCheck(member, shown) if shown is not None else None
    try:
        done = conns.get(node).stream_in(stream.argv(*args), _Region(fd, *region, stop, check))  # type: ignore[arg-type]
    except Stopped:
        if check is not None and check.failed.is_set():
            check.finish()  # raises what is wrong with the member
        if check is not None:
            check.stop()
        raise
    except BaseException:
        if check is not None:
            check.stop()
        raise
    if check is not None:
        check.finish()  # its problem first: it says what is wrong with the archive
    if done.status < 0:
        raise NodeUnreachable(node, "transfer", "the connection closed while staging")
    answer = stream.answer(done)
    if answer is None:
        raise KatoError(
            f"{node}: staging {member.name} failed: {done.error_line}",
            hint="nothing was switched; fix the cause and import again",
        )
    if answer.status != 0:
        changed = "sha256" in answer.error or answer.error.startswith("zstd")
        raise KatoError(
            f"{node}: staging {member.name} failed: {answer.error}",
            hint="nothing was switched; "
            + (
                "the archive changed or was corrupted after it was verified: "
                "run `kato data verify` on it, then import again"
                if changed
                else "fix the cause and import again"
            ),
        )
    return (f"stage {member.name} in {p.staged}", stream.shown(*args), "ok", done.seconds)
