"""Export with the heavy work on the nodes (`--compress zstd`): every node runs kato's data
program, which reads each of its data dirs, hashes it and compresses it there, at most
--parallel nodes at once (default: the cluster file's ssh.parallel); kato writes the
compressed bytes into the archive as they come, fills in the tar headers and the manifest,
and reads every byte back before the archive may be published."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from kato.config import DataLimits
from kato.data import limits, stream
from kato.data.archive import BLOCK, ArchiveWriter, raw_frame, tar_header
from kato.data.assemble import Aborted, Assembly
from kato.data.each_node import each_node, workers
from kato.data.frames import check_frames
from kato.data.manifest import NAME, SLOT, Manifest, Member
from kato.data.readback import Job, ReadBack
from kato.data.selection import DataDir
from kato.data.writeback import WriteBack
from kato.errors import KatoError, NodeUnreachable
from kato.operation import Operation
from kato.progress import Progress
from kato.transport.base import CommandResult
from kato.transport.pool import Connections

ABANDON = 10.0  # seconds to wait for the other nodes' streams to stop after a failure


class ExportFailed(KatoError):
    """Reading one data dir failed on its node: nothing was published."""

    def __init__(self, source: DataDir, detail: str) -> None:
        super().__init__(
            f"{source.node}: exporting {source.role} {source.data_dir} failed: {detail}",
            hint="no archive was written; see the error above, then run the export again",
        )
        self.node = source.node


def program_args(source: DataDir) -> tuple[str, ...]:
    if source.spec.kind == "tree":
        return ("export", "tree", source.path)
    return ("export", "stream", *source.spec.dump)


def write(
    conns: Connections,
    op: Operation,
    temp: Path,
    meta: Manifest,
    sources: Sequence[DataDir],
    facts: dict[DataDir, tuple[str, str]],
    progress: Progress,
    warnings: list[str],
    within: DataLimits = limits.UNLIMITED,
) -> Manifest:
    """Fill `temp` with the archive of `sources` (facts: each one's mode and owner), read it
    back, and return its manifest. Nothing is left behind but `temp` itself. `within`: the
    entry limit across the trees, applied as they stream."""
    # an unreachable node fails here, before anything streams
    each_node((s.node for s in sources), lambda node: stream.ready(conns.get(node)), conns.parallel)
    assembly = Assembly(len(sources), temp.with_name(temp.name + ".spool"))
    results: list[CommandResult | None] = [None] * len(sources)
    threads = workers(
        (s.node for s in sources),
        lambda node: _node(conns, node, sources, assembly, results),
        conns.parallel,
        "kato-export",
    )
    for thread in threads:
        thread.start()
    try:
        readback = ReadBack(temp, str(temp), within, assembly.abort)
        return _assemble(op, temp, meta, sources, facts, progress, warnings, assembly, results,
                         readback)  # fmt: skip
    except BaseException:
        assembly.abort()
        raise
    finally:
        # After a failure a node still streaming stops at its next write; a hung one would
        # hold the report back until its idle timeout, so it is left behind (daemon thread).
        for thread in threads:
            thread.join(timeout=ABANDON if assembly.aborted else None)
        assembly.clean()


def _node(
    conns: Connections,
    node: str,
    sources: Sequence[DataDir],
    assembly: Assembly,
    results: list[CommandResult | None],
) -> None:
    """One node's members, one after the other, each into its slot (none read once the
    export stopped: this node waited for its turn under --parallel)."""
    failed: BaseException | None = Aborted() if assembly.aborted else None
    for index, source in enumerate(sources):
        if source.node != node:
            continue
        error = failed
        try:
            if error is None:
                results[index] = conns.get(node).stream_out(
                    stream.argv(*program_args(source)),
                    assembly.sink(index),  # type: ignore[arg-type]
                )
        except BaseException as exc:  # noqa: BLE001 (the assembling thread raises it)
            error = failed = exc
        finally:
            assembly.close(index, error)


def _assemble(
    op: Operation,
    temp: Path,
    meta: Manifest,
    sources: Sequence[DataDir],
    facts: dict[DataDir, tuple[str, str]],
    progress: Progress,
    warnings: list[str],
    assembly: Assembly,
    results: list[CommandResult | None],
    readback: ReadBack,
) -> Manifest:
    mtime = int(datetime.fromisoformat(meta.created).timestamp())
    frames: list[tuple[int, bytes]] = []
    members: list[tuple[Member, Job]] = []
    with temp.open("r+b", buffering=0) as file, WriteBack(file.fileno()):
        writer = ArchiveWriter(file, "zstd", mtime)
        try:
            for index, source in enumerate(sources):
                progress.step(f"{source.node}: {source.role} {source.data_dir} ({source.path})")
                hole = writer.reserve_header()
                job = readback.begin(source.member, source.spec.kind, file.tell(), source.shown)
                error = assembly.take(index, writer, lambda end: readback.extend(job, end))  # noqa: B023
                if error is not None and not isinstance(error, Aborted):
                    raise error  # the node's stream failed: that explains a broken member
                if error is None:  # the node's own failure first, then what was read back
                    size, sha256 = _judge(source, results[index], warnings)
                if readback.failure is not None:  # it stopped the nodes: its reason first
                    raise readback.failure
                if error is not None:
                    raise KatoError("stopped")
                frames.append((hole.offset, writer.fill_header(hole, source.member, size)))
                readback.close(job, file.tell(), size, sha256)
                if readback.failure is not None:
                    raise readback.failure
                done = results[index]
                assert done is not None
                op.step(
                    source.node,
                    f"export {source.role} {source.data_dir}",
                    stream.shown(*program_args(source)),
                    "ok",
                    done.seconds,
                    bytes=size,
                )
                mode, owner = facts[source]
                member = Member(source.member, source.node, source.role, source.data_dir,
                                source.path, source.spec.kind, size, mode, owner,
                                sha256)  # fmt: skip
                members.append((member, job))
            progress.step("reading the archive back")
            readback.finish()  # every member checked: each tree's entries are known
            manifest = Manifest(
                meta.format,
                meta.cluster,
                meta.platform_version,
                meta.kato_version,
                meta.created,
                tuple(replace(m, entries=job.entries) for m, job in members),
            )
            frames.append((file.tell(), raw_frame(bytes(2 * BLOCK), "zstd")))
            writer.finish(manifest, raw_end=True)
            body = tar_header(NAME, SLOT, mtime) + manifest.encode()
            frames.append((0, raw_frame(body, "zstd")))
            size_on_disk = file.seek(0, 2)
        finally:
            readback.stop()
    check_frames(temp, frames, size_on_disk, str(temp))
    return manifest


def _judge(source: DataDir, done: CommandResult | None, warnings: list[str]) -> tuple[int, str]:
    """(size, sha256) of a member the node read; refused when its reading failed."""
    assert done is not None
    if done.status < 0:
        raise NodeUnreachable(source.node, "transfer", "the connection closed mid-export")
    answer = stream.answer(done)
    if answer is None:
        raise ExportFailed(source, f"kato's data program did not finish: {done.error_line}")
    if answer.status == 1 and source.spec.kind == "tree" and not answer.error.startswith("zstd"):
        # GNU tar: some files changed while being read; the member is whole, those files
        # hold whatever tar read.
        warnings.append(f"{source.shown}: files changed while read ({answer.error})")
    elif answer.status != 0:
        what = "tar" if source.spec.kind == "tree" else " ".join(source.spec.dump)
        raise ExportFailed(source, f"`{what}` exited {answer.status}: {answer.error}")
    return answer.size, answer.sha256
