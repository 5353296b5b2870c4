"""Import's staging at the nodes' speed: each member goes to its node still compressed (its
frames as they lie in the archive, never decompressed here), where kato's data program
decompresses it, checks it (kato/remote/node_member.py: size, sha256, a tree's safety and
entry count, zeros after) and writes the staging dir in one pass. The nodes are staged
--parallel at once; a member that does not match its manifest entry fails the import before
anything is switched."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
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
GO = b"go\n"  # node_data.py's import-held: the lock is held, stage now


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
    """stdin for the node's program: the line `go` once the gate opens (the program was started
    held, see Staging), then the member's bytes as they lie in the archive."""

    def __init__(
        self,
        fd: int,
        region: tuple[int, int],
        stop: threading.Event,
        gate: threading.Event,
        going: Callable[[], object],
    ) -> None:
        self.fd, (self.position, self.end), self.stop, self.gate = fd, region, stop, gate
        self.going = going  # told once, as the go line goes (progress)
        self.went: float | None = None  # when it went (monotonic)

    def read(self, size: int = -1) -> bytes:
        if self.went is None:
            self.gate.wait()
            if self.stop.is_set():
                raise Stopped
            self.went = time.monotonic()
            self.going()
            return GO
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
    """Stage every placement now (Staging started and let go at once)."""
    return Staging(conns, path, placements, where, progress, shown, units).go(op)


class Staging:
    """Every placement staged, conns.parallel nodes at once. Made before the cluster lock is
    taken: each node's data program starts then (its SSH session and python3, while the core
    node takes the lock) and waits, having looked at nothing, for go(), which sends the line
    `go` after the lock is held and fenced, then the members; cancel() (the lock refused, a
    failure, Ctrl-C) ends their input unsent, and they exit having done nothing.

    `shown` (the archive's name): the archive was not verified beforehand (format 2), so a
    member that fails the node's check is refused as `kato data verify` refuses it
    (ArchiveInvalid). `units`: (node, role) -> its units, whose states each member's node
    reports as it stages (go returns (node, role) -> {unit: state}; a node that did not say
    is left out)."""

    def __init__(
        self,
        conns: Connections,
        path: Path,
        placements: Sequence[Placement],
        where: dict[str, tuple[int, int]],
        progress: Progress,
        shown: str | None = None,
        units: Units | None = None,
    ) -> None:
        self.conns, self.placements = conns, placements
        self.nodes = list(dict.fromkeys(p.target.node for p in placements))
        # an unreachable node fails here, before anything is sent
        each_node(self.nodes, lambda node: stream.ready(conns.get(node)), conns.parallel)
        # set on go (the lock held) or on cancel (with stop: the programs get the end of input)
        self.stop, self.gate = threading.Event(), threading.Event()
        self.failures: list[BaseException] = []
        self.staged: dict[str, _Step] = {}
        self.states: States = {}
        asked = units or {}
        self.fd = os.open(path, os.O_RDONLY)

        def one_node(node: str) -> None:
            try:
                for p in placements:
                    if self.stop.is_set():  # another node failed while this one waited its turn
                        return
                    if p.target.node == node:
                        key = (node, p.target.role)
                        said = f"{node}: staging {p.member.name} in {p.staging_dir}"
                        region = _Region(self.fd, where[p.member.name], self.stop, self.gate,
                                         functools.partial(progress.step, said))  # fmt: skip
                        self.staged[p.member.name], seen = _stage_one(
                            conns, region, p, shown, asked.get(key, ()))  # fmt: skip
                        if seen is not None:
                            self.states[key] = seen
            except Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 (raised by go, in the calling thread)
                self.failures.append(exc)
                self.stop.set()

        self.threads = workers(self.nodes, one_node, conns.parallel, "kato-stage")
        for thread in self.threads:
            thread.start()

    def go(self, op: Operation) -> States:
        """Fence, let every program stage, wait for all; the first failure is raised."""
        try:
            each_node(self.nodes, self.conns.get, self.conns.parallel)  # the lock still ours
            self.gate.set()
            for thread in self.threads:
                thread.join()
        except BaseException:
            self.cancel()
            raise
        finally:
            self._close()
            for p in self.placements:  # the journal is written by this thread only
                if p.member.name in self.staged:
                    op.step(p.target.node, *self.staged[p.member.name])
        if self.failures:
            raise self.failures[0]
        return self.states

    def cancel(self, wait: float | None = None) -> None:
        """Stop every program (those still held exit having done nothing) and wait for them,
        at most `wait` seconds (None: until they are gone)."""
        self.stop.set()
        self.gate.set()
        deadline = None if wait is None else time.monotonic() + wait
        for thread in self.threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._close()

    def _close(self) -> None:
        """The archive's descriptor, once no thread may read it any more (a number closed
        under a reader could be reused for another file)."""
        if self.fd >= 0 and not any(thread.is_alive() for thread in self.threads):
            os.close(self.fd)
            self.fd = -1


_Step = tuple[str, tuple[str, ...], str, float]


def _stage_one(
    conns: Connections,
    region: _Region,
    p: Placement,
    shown: str | None,
    units: Sequence[str] = (),
) -> tuple[_Step, dict[str, str] | None]:
    """Stage one member, its program started held (import-held: see Staging); returns its
    journal step (description, argv, result, seconds from go) and the states of `units` as
    its node reported them."""
    node, member = p.target.node, p.member
    listed = "-" if member.entries is None or member.type != "tree" else str(member.entries)
    args = ("import", member.type, p.staging_dir, p.staged, str(member.size), member.sha256,
            listed)  # fmt: skip
    held = stream.argv("import-held", *args[1:], *units)
    done = conns.get(node).stream_in(held, region)  # type: ignore[arg-type]
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
    seconds = time.monotonic() - region.went if region.went is not None else done.seconds
    step = (f"stage {member.name} in {p.staged}", stream.shown(*args), "ok", seconds)
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
