"""Import's check of one member of a format-2 archive while it streams to its node: the same
compressed bytes the node gets are decompressed here (zstd, in C) and checked as `kato data
verify` does (sha256 and size, a tree's safety and exactly the entries its manifest lists,
zeros after it). The node checks the sha256 too; nothing is switched unless every member's
check passed here and there."""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import threading

from kato.data.manifest import Member
from kato.data.tree_check import TreeCheck
from kato.data.verify import ArchiveInvalid
from kato.transport import local

CHUNK = 1 << 20
UNZSTD = ("zstd", "-d", "-q", "-c")


class MemberCheck:
    """Feed it the member's compressed bytes (`feed`), then `finish()`: raises ArchiveInvalid
    naming what is wrong. `failed` is set as soon as a problem is known, so the caller can
    stop the transfer early."""

    def __init__(self, member: Member, shown: str) -> None:
        self.member, self.shown = member, shown
        self.problem: ArchiveInvalid | None = None
        self.failed = threading.Event()
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by finish or stop)
        self._proc = local.filter_through(UNZSTD, self._errors)
        self._thread = threading.Thread(target=self._consume, daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> None:
        if self.failed.is_set():
            return
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
        except BrokenPipeError:
            self._fail("corrupt: zstd stopped reading it")

    def finish(self) -> None:
        """Wait for the check of everything fed; raise its problem, if any."""
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        self._thread.join()
        status = self._proc.wait()
        if status != 0 and self.problem is None:
            self._errors.seek(0)
            said = self._errors.read().decode(errors="replace").strip().splitlines()
            self._fail(f"corrupt: zstd: {said[-1] if said else status}")
        self._errors.close()
        if self.problem is not None:
            raise self.problem

    def stop(self) -> None:
        """Stop early (another member failed): no problem of this one is reported."""
        self.failed.set()
        self._proc.kill()
        self._thread.join()
        self._proc.wait()
        self._errors.close()

    def _fail(self, problem: str | ArchiveInvalid) -> None:
        if self.problem is None:
            self.problem = (
                problem
                if isinstance(problem, ArchiveInvalid)
                else ArchiveInvalid(self.shown, self.member.name, problem)
            )
        self.failed.set()

    def _consume(self) -> None:
        """zstd's output into one reused buffer: the member's bytes hashed (and a tree walked)
        one chunk per call, then only zeros may follow (padding, the archive's end)."""
        assert self._proc.stdout is not None
        out, member = self._proc.stdout, self.member
        tree = None
        if member.type == "tree":
            tree = TreeCheck(member.name, self.shown, listed=member.entries)
        sha, left, trailing = hashlib.sha256(), member.size, False
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        try:
            while count := out.readinto(buffer):  # type: ignore[attr-defined]
                mine = view[: min(count, left)]
                if mine:
                    sha.update(mine)
                    if tree is not None:
                        tree.feed(mine)
                    left -= len(mine)
                if not trailing and view[len(mine) : count].tobytes().strip(b"\0"):
                    trailing = True
            if left:
                self._fail(f"ends after {member.size - left} of {member.size} bytes")
            if tree is not None and not left:
                tree.finish()
            if sha.hexdigest() != member.sha256 and not left:
                self._fail("sha256 does not match the manifest: corrupt")
            if trailing:
                self._fail("data after the member's end")
        except ArchiveInvalid as exc:
            self._fail(exc)
        except Exception as exc:  # noqa: BLE001 (never let a check that broke pass)
            self._fail(f"could not be checked: {exc}")
        finally:
            with contextlib.suppress(OSError, ValueError):
                while out.readinto(buffer):  # type: ignore[attr-defined]
                    pass  # let zstd finish (or fail) on what is left
