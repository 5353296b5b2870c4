"""Export's read-back check, overlapped with the transfer: each member is read back from the
archive file as it grows (zstd decompresses it, hashlib hashes it, both in C), a tree is
checked for safety as `kato data verify` does, and the result must match what the node
reported. Then the frames kato wrote itself (manifest, headers, end) are read back after the
fsync. Only an archive whose every byte was read back this way is published. The trees' entries
are counted across the archive against the import limit (data.max_entries): a data dir of
millions of files is refused while it streams, not hours later."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kato.config import DataLimits
from kato.data import limits
from kato.data.archive import BLOCK
from kato.data.verify import ArchiveInvalid, check_tree
from kato.transport import local

CHUNK = 1 << 20
UNZSTD = ("zstd", "-d", "-q", "-c")


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


class _Checked:
    """Reads the decompressed member, hashing all but the last 511 bytes seen (which may be
    the tar padding: the member's size is known only at its end)."""

    HOLD = BLOCK - 1

    def __init__(self, source: IO[bytes]) -> None:
        self.source, self.sha, self.total, self.held = source, hashlib.sha256(), 0, b""

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(CHUNK if size < 0 else size)
        if not data:
            return data
        self.total += len(data)
        if len(data) >= self.HOLD:
            self.sha.update(self.held)
            self.sha.update(memoryview(data)[: len(data) - self.HOLD])
            self.held = data[len(data) - self.HOLD :]
        else:
            joined = self.held + data
            cut = max(0, len(joined) - self.HOLD)
            self.sha.update(joined[:cut])
            self.held = joined[cut:]
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def digest(self, size: int) -> tuple[str, bool]:
        """(sha256 of the first `size` bytes, whether everything after them is zeros)."""
        hashed = self.total - len(self.held)
        if size < hashed:
            return "", False
        sha = self.sha.copy()
        sha.update(self.held[: size - hashed])
        return sha.hexdigest(), not self.held[size - hashed :].strip(b"\0")


class ReadBack:
    """Checks the members of the archive at `path` one after the other in a thread."""

    def __init__(
        self,
        path: Path,
        shown: str,
        within: DataLimits = limits.UNLIMITED,
        failed: Callable[[], None] = lambda: None,
    ) -> None:
        """`within`: the entry limit across the trees; `failed()` is called at the first
        problem found (from the read-back thread), so the export can stop at once."""
        self.path, self.shown, self.within, self.failed = path, shown, within, failed
        self.fd = os.open(path, os.O_RDONLY)
        self.cond = threading.Condition()
        self.jobs: list[Job] = []
        self.entries = 0  # in the trees checked so far
        self.failure: BaseException | None = None
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True, name="kato-readback")
        self.thread.start()

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
                if self.failure is not None or not self.thread.is_alive():
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
        self.thread.join()
        os.close(self.fd)

    def _run(self) -> None:
        index = 0
        try:
            while True:
                with self.cond:
                    while index >= len(self.jobs) and not self.stopped:
                        self.cond.wait()
                    if index >= len(self.jobs):
                        return
                    job = self.jobs[index]
                self._check(job)
                job.checked.set()
                index += 1
        except BaseException as exc:  # noqa: BLE001 (handed to the thread that waits)
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
            self.failed()

    def _check(self, job: Job) -> None:
        with tempfile.TemporaryFile() as errors:
            proc = local.filter_through(UNZSTD, errors)
            assert proc.stdin is not None and proc.stdout is not None
            reader = _Checked(proc.stdout)
            problems: list[BaseException] = []
            consumer = threading.Thread(target=self._consume, args=(job, reader, problems))
            consumer.start()
            try:
                self._feed(job, proc.stdin)
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
        self._compare(job, reader)

    def _feed(self, job: Job, pipe: IO[bytes]) -> None:
        position = job.start
        while True:
            with self.cond:
                while position >= job.committed and job.end is None and not self.stopped:
                    self.cond.wait()
                if self.stopped and job.end is None:
                    raise ArchiveInvalid(self.shown, job.name, "the export stopped")
                until = job.committed
            while position < until:
                data = os.pread(self.fd, min(CHUNK, until - position), position)
                if not data:
                    raise ArchiveInvalid(self.shown, job.name, "shorter on disk than written")
                pipe.write(data)
                position += len(data)
            if job.end is not None and position >= job.end:
                return

    def _consume(self, job: Job, reader: _Checked, problems: list[BaseException]) -> None:
        try:
            if job.kind == "tree":
                job.entries = check_tree(
                    reader,  # type: ignore[arg-type]
                    job.name,
                    self.shown,
                    self.within,
                    self.entries,
                )
                self.entries += job.entries
        except limits.LimitExceeded:
            self._fail(limits.export_too_many_entries(job.shown, self.within))
        except BaseException as exc:  # noqa: BLE001 (raised by _check once zstd is done)
            problems.append(exc)
        finally:
            reader.drain()

    def _compare(self, job: Job, reader: _Checked) -> None:
        digest, zeros = reader.digest(job.size)
        if reader.total != job.size + (-job.size % BLOCK) or not zeros:
            raise ArchiveInvalid(
                self.shown, job.name, f"read back {reader.total} bytes for a member of {job.size}"
            )
        if digest != job.sha256:
            raise ArchiveInvalid(
                self.shown, job.name, "read back with another sha256 than the node sent"
            )


def check_frames(path: Path, frames: list[tuple[int, bytes]], size: int, shown: str) -> None:
    """The frames kato wrote itself are on disk as written, and the file is as long as all
    that was written (so the members, checked above, fill exactly the rest)."""
    with path.open("rb") as file:
        for offset, expected in frames:
            if os.pread(file.fileno(), len(expected), offset) != expected:
                raise ArchiveInvalid(
                    shown,
                    "archive",
                    f"the frame at byte {offset} reads back differently from what was written",
                )
        if os.fstat(file.fileno()).st_size != size:
            raise ArchiveInvalid(shown, "archive", "the file's size is not what was written")
