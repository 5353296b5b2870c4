"""Export's read-back check, overlapped with the transfer: each member is read back from the
archive file as it grows (libzstd decompresses it in this process, or `zstd -d` where the
library cannot be loaded; hashlib hashes it one chunk per call), a tree is checked for safety
as `kato data verify` does, and the result must match what the node reported. Then the frames
kato wrote itself (manifest, headers, end) are read back after the fsync
(frames.check_frames). Only an archive whose every byte was read back this way is published.
The trees' entries are counted across the archive against the import limit
(data.max_entries): a data dir of millions of files is refused while it streams, not hours
later.

Several members are read back at once (WORKERS threads, each taking the next member in the
archive's order): with several nodes exporting together, the members that waited in spool files
land in the archive one right after the other at the end, and checking them one after the
other left all but one core idle while the export waited for them (three nodes at once here:
the read-backs of node2's and node3's members ran back to back after the last node was done)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kato.config import DataLimits
from kato.data import limits, unzstd
from kato.data.archive import BLOCK
from kato.data.held import Held
from kato.data.tree_check import TreeCheck
from kato.data.verify import ArchiveInvalid
from kato.transport import local

CHUNK = 1 << 20
COPY = 1 << 22  # bytes per sendfile call
UNZSTD = ("zstd", "-d", "-q", "-c")
# members read back at once: one per core, at most 4 (each holds about 6 MiB of buffers)
WORKERS = max(1, min(4, len(os.sched_getaffinity(0))))  # the CPUs this process may use


@dataclass(eq=False)
class Job:
    """One member's compressed bytes in the archive: [start, committed) so far, `end` once
    the member is complete, with the size and sha256 the node reported."""

    name: str
    kind: str
    start: int
    shown: str  # the data dir, as errors name it
    committed: int = 0
    end: int | None = None
    size: int = 0
    sha256: str = ""
    entries: int = 0  # a tree's files, dirs and links, once checked
    checked: threading.Event = field(default_factory=threading.Event)


class ReadBack:
    """Checks the members of the archive at `path`, up to `workers` at once (threads taking
    the members in order)."""

    def __init__(
        self,
        path: Path,
        shown: str,
        within: DataLimits = limits.UNLIMITED,
        failed: Callable[[], None] = lambda: None,
        workers: int = WORKERS,
    ) -> None:
        """`within`: the entry limit across the trees; `failed()` is called at the first
        problem found (from the read-back thread), so the export can stop at once."""
        self.path, self.shown, self.within, self.failed = path, shown, within, failed
        self.fd = os.open(path, os.O_RDONLY)
        self.cond = threading.Condition()
        self.jobs: list[Job] = []
        self.next = 0  # the index of the next member a worker takes
        self.entries = 0  # in the trees checked so far
        self.failure: BaseException | None = None
        self.stopped = False
        self.threads = [
            threading.Thread(target=self._run, daemon=True, name=f"kato-readback-{i}")
            for i in range(max(1, workers))
        ]
        for thread in self.threads:
            thread.start()

    def begin(self, name: str, kind: str, start: int, shown: str = "") -> Job:
        job = Job(name, kind, start, shown or name, start)
        with self.cond:
            self.jobs.append(job)
            self.cond.notify_all()
        return job

    def extend(self, job: Job, committed: int) -> None:
        with self.cond:
            job.committed = committed
            self.cond.notify_all()

    def close(self, job: Job, end: int, size: int, sha256: str) -> None:
        with self.cond:
            job.committed, job.end, job.size, job.sha256 = end, end, size, sha256
            self.cond.notify_all()

    def finish(self) -> None:
        """Wait until every member was checked; raise the first problem found."""
        for job in list(self.jobs):
            while not job.checked.wait(1.0):
                if self.failure is not None or not any(t.is_alive() for t in self.threads):
                    break
        self.stop()
        if self.failure is not None:
            raise self.failure
        if not all(job.checked.is_set() for job in self.jobs):
            raise ArchiveInvalid(self.shown, "archive", "the read-back check stopped early")

    def stop(self) -> None:
        with self.cond:
            if self.stopped:
                return
            self.stopped = True
            self.cond.notify_all()
        for thread in self.threads:
            thread.join()
        os.close(self.fd)

    def _run(self) -> None:
        try:
            while (job := self._take()) is not None:
                self._check(job)
                job.checked.set()
        except BaseException as exc:  # noqa: BLE001 (handed to the thread that waits)
            self._fail(exc)

    def _take(self) -> Job | None:
        """The next member to check, once the export has begun it (None once stopped)."""
        with self.cond:
            while self.next >= len(self.jobs) and not self.stopped:
                self.cond.wait()
            if self.next >= len(self.jobs):
                return None
            self.next += 1
            return self.jobs[self.next - 1]

    def _fail(self, exc: BaseException) -> None:
        with self.cond:
            first = self.failure is None
            if first:
                self.failure = exc
        if first:
            self.failed()

    def _check(self, job: Job) -> None:
        tree = None
        if job.kind == "tree":
            with self.cond:  # the trees checked so far (those checked alongside: at its end)
                before = self.entries
            tree = TreeCheck(job.name, self.shown, self.within, before)
        held = Held(tree)
        if unzstd.available():
            self._check_here(job, held)
        else:
            self._check_piped(job, held)
        self._compare(job, held)

    def _check_here(self, job: Job, held: Held) -> None:
        """Decompress the member's bytes in this thread (libzstd) as they land in the file;
        every piece hashed and walked as it comes."""
        try:
            for piece in unzstd.pieces(unzstd.Decompressor(), self._landed(job)):
                held.push(piece)
        except unzstd.ZstdError as exc:
            raise ArchiveInvalid(self.shown, job.name, f"corrupt on disk: zstd: {exc}") from None
        except limits.LimitExceeded:
            self._fail(limits.export_too_many_entries(job.shown, self.within))
            raise

    def _landed(self, job: Job) -> Iterator[tuple[bytearray, int]]:
        """The member's compressed bytes read from the file as they land, into one buffer."""
        source = bytearray(CHUNK)
        view = memoryview(source)
        position = job.start
        while (until := self._committed(job, position)) is not None:
            while position < until:
                count = os.preadv(self.fd, [view[: min(CHUNK, until - position)]], position)
                if not count:
                    raise ArchiveInvalid(self.shown, job.name, "shorter on disk than written")
                position += count
                yield source, count

    def _committed(self, job: Job, position: int) -> int | None:
        """Wait until the member has bytes past `position` in the file: up to where (None
        once it is complete and read to its end)."""
        with self.cond:
            while position >= job.committed and job.end is None and not self.stopped:
                self.cond.wait()
            if self.stopped and job.end is None:
                raise ArchiveInvalid(self.shown, job.name, "the export stopped")
            if job.end is not None and position >= job.end:
                return None
            return job.committed

    def _check_piped(self, job: Job, held: Held) -> None:
        """As _check_here, through `zstd -d` where libzstd cannot be loaded."""
        with tempfile.TemporaryFile() as errors:
            proc = local.filter_through(UNZSTD, errors)
            assert proc.stdin is not None and proc.stdout is not None
            problems: list[BaseException] = []
            consumer = threading.Thread(
                target=self._consume, args=(job, proc.stdout, held, problems)
            )
            consumer.start()
            try:
                self._feed(job, proc.stdin.fileno())
            except BrokenPipeError:
                pass  # zstd stopped: its status and message say why
            finally:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
                consumer.join()
                status = proc.wait()
            if status != 0:
                errors.seek(0)
                said = errors.read().decode(errors="replace").strip().splitlines()
                raise ArchiveInvalid(
                    self.shown, job.name, f"corrupt on disk: zstd: {said[-1] if said else status}"
                )
        if problems:
            raise problems[0]

    def _feed(self, job: Job, pipe: int) -> None:
        """The member's compressed bytes, from the file to zstd's input by the kernel
        (sendfile): no copy through Python."""
        position = job.start
        while (until := self._committed(job, position)) is not None:
            while position < until:
                sent = os.sendfile(pipe, self.fd, position, min(COPY, until - position))
                if not sent:
                    raise ArchiveInvalid(self.shown, job.name, "shorter on disk than written")
                position += sent

    def _consume(self, job: Job, out: IO[bytes], held: Held, problems: list[BaseException]) -> None:
        """Read zstd's output into one reused buffer; hash and walk it as it comes."""
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        try:
            while count := out.readinto(buffer):  # type: ignore[attr-defined]
                try:
                    held.push(view[:count])
                except BaseException:
                    held.tree = None  # the tree failed: the rest is only read, so zstd ends
                    raise
        except limits.LimitExceeded:
            self._fail(limits.export_too_many_entries(job.shown, self.within))
        except BaseException as exc:  # noqa: BLE001 (raised by _check once zstd is done)
            problems.append(exc)
        finally:
            with contextlib.suppress(OSError, ValueError):
                while out.readinto(buffer):  # type: ignore[attr-defined]
                    pass

    def _count(self, job: Job) -> None:
        """Add a checked tree's entries to the archive's; past the limit, the refusal names
        the tree at which the count passes it in the archive's order (trees checked at the
        same time each counted only those finished before them while they streamed)."""
        with self.cond:
            self.entries += job.entries
            if self.entries <= self.within.max_entries:
                return
            total, over = 0, job
            for done in self.jobs:
                total += done.entries
                if total > self.within.max_entries:
                    over = done
                    break
        refusal = limits.export_too_many_entries(over.shown, self.within)
        self._fail(refusal)
        raise refusal

    def _compare(self, job: Job, held: Held) -> None:
        try:
            digest, zeros = held.digest(job.size)
            if held.tree is not None and digest:
                job.entries = held.tree.finish()
                self._count(job)
        except limits.LimitExceeded:
            self._fail(limits.export_too_many_entries(job.shown, self.within))
            raise
        if held.total != job.size + (-job.size % BLOCK) or not zeros:
            raise ArchiveInvalid(
                self.shown, job.name, f"read back {held.total} bytes for a member of {job.size}"
            )
        if digest != job.sha256:
            raise ArchiveInvalid(
                self.shown, job.name, "read back with another sha256 than the node sent"
            )
