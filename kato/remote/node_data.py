"""The node side of `kato data export` and `import`: a standalone program (standard library
only, python3 on the node) that does the heavy work where the data is.

    export tree PATH                 tar of the data dir, hashed, then zstd: the member's
    export stream ARGV...            bytes (padded to 512) as zstd frames on stdout
    import tree|stream DIR STAGED SIZE SHA256 ENTRIES|- [UNIT...]
                                     zstd frames of a member (data, padding, maybe the
                                     archive's end blocks) on stdin, decompressed, checked
                                     (node_member.py: size, sha256, a tree's safety and
                                     ENTRIES, zeros after) and written to STAGED (a tree
                                     extracted, a dump as a file) in one pass; a member that
                                     fails its check leaves nothing staged. The UNITs' states
                                     (`systemctl is-active`, asked while the member stages)
                                     are reported as `units`: the switch that follows needs
                                     them, and learns them here without a call of its own

Both end with one line on stderr, `KATO-RESULT {json}`: the member's size and sha256 as the
node saw them, the exit status of the tar/dump or zstd/tar that did the work and the last
line of its error output; an import's also says whether the member failed its check
(`invalid`) and at which of a tree's entries (`entry`). It is part of the node agent
(kato/remote/agent.py: shipped once per node per run, cached by content hash), so stdin
carries only the data.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

CHUNK = 1 << 20
BLOCK = 512
RESULT = "KATO-RESULT "
GENERIC = ("Error is not recoverable: exiting now", "due to previous errors")
ZSTD = ("zstd", "-1", "-T0", "-q", "-c")
UNZSTD = ("zstd", "-d", "-q", "-c")
# GNU tar: numeric owners, modes, symlinks and any file name; a stable order; no atime/ctime.
TREE_ARGV = (
    "tar", "--create", "--file=-", "--format=posix", "--numeric-owner", "--sort=name",
    "--pax-option=delete=atime,delete=ctime", "--directory",
)  # fmt: skip
EXTRACT_ARGV = (
    "tar", "--extract", "--file=-", "--numeric-owner", "--same-owner", "--preserve-permissions",
    "--directory",
)  # fmt: skip


class Tail:
    """Keeps the last lines a child writes to a pipe (read in a thread, so it never blocks)."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.data = b""
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe: IO[bytes]) -> None:
        while chunk := pipe.read(4096):
            self.data = (self.data + chunk)[-4096:]

    def last_line(self) -> str:
        """The last line that says what went wrong (GNU tar ends with a line that does not)."""
        self.thread.join()
        lines = self.data.decode(errors="replace").strip().splitlines()
        telling = [line for line in lines if not line.endswith(GENERIC)]
        return (telling or lines or [""])[-1]


def widen(pipe: IO[bytes]) -> None:
    """A 1 MiB pipe buffer (Linux allows that much unprivileged): fewer wake-ups per MB."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ


def report(**fields: Any) -> None:
    sys.stderr.write(RESULT + json.dumps(fields) + "\n")
    sys.stderr.flush()


def _tee() -> Any:
    """libc's tee(2), which duplicates a pipe's bytes into another pipe inside the kernel;
    None where ctypes or the call is missing."""
    try:
        import ctypes

        tee = ctypes.CDLL(None, use_errno=True).tee
    except (ImportError, OSError, AttributeError):
        return None
    tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
    tee.restype = ctypes.c_ssize_t
    return tee


def pass_on(
    source: int, sink: int, look: Callable[[memoryview], object] | None = None, limit: int = -1
) -> tuple[int, str]:
    """Copy the pipe `source` into the pipe `sink` and hash what passes: (size, sha256).
    With tee(2) the bytes reach the sink without a trip through this process, which reads
    them once, only to hash them (one copy per byte instead of two, measured 0.4 s less CPU
    per 2 GB); where tee is refused (not pipes, an old kernel) they are read and written.
    `look` sees every chunk that passes (it may raise to stop); at most `limit` bytes pass
    (-1: all), the rest stays in `source`."""
    sha, size, tee = hashlib.sha256(), 0, _tee()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)

    def room() -> int:
        return CHUNK if limit < 0 else min(CHUNK, limit - size)

    while tee is not None and room():
        count = tee(source, sink, room(), 0)
        if count < 0:
            import ctypes

            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            if code in (errno.EINVAL, errno.ENOSYS) and size == 0:
                break  # no tee here: copy below
            raise OSError(code, os.strerror(code))
        if count == 0:
            return size, sha.hexdigest()
        got = 0
        while got < count:  # the bytes tee saw are in the pipe: this never waits
            read = os.readv(source, [view[got:count]])
            if not read:
                raise OSError(errno.EIO, "the pipe ended before the bytes tee saw")
            got += read
        sha.update(view[:count])
        size += count
        if look is not None:
            look(view[:count])
    while (want := room()) and (count := os.readv(source, [view[:want]])):
        sha.update(view[:count])
        size += count
        if look is not None:
            look(view[:count])  # before the sink gets them, where there is no tee
        sent = 0
        while sent < count:
            sent += os.write(sink, view[sent:count])
    return size, sha.hexdigest()


def export(kind: str, args: list[str]) -> int:
    """Read the data dir (or the role's dump), hash it, compress it to stdout."""
    argv = [*TREE_ARGV, args[0], "."] if kind == "tree" else args
    source = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)  # fmt: skip
    packer = subprocess.Popen(ZSTD, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert source.stdout and source.stderr and packer.stdin and packer.stderr
    widen(source.stdout)
    widen(packer.stdin)
    said, packer_said = Tail(source.stderr), Tail(packer.stderr)
    size, digest, broken = 0, "", False
    try:
        size, digest = pass_on(source.stdout.fileno(), packer.stdin.fileno())
        packer.stdin.write(bytes(-size % BLOCK))
        packer.stdin.close()
    except BrokenPipeError:
        broken = True
        source.kill()
    status, packed = source.wait(), packer.wait()
    error = said.last_line() if status else ""
    if packed or broken:
        status, error = status or 1, f"zstd: {packer_said.last_line() or f'exit {packed}'}"
    report(size=size, sha256=digest, status=status, error=error)
    return 0


def private_dir(path: str) -> str:
    """Make the staging dir (0700), or take the one an earlier member of this run made: a real
    directory of ours, never a link planted at its name (its mode is set through the opened
    directory, not by name). What is wrong, or "" when it is fine."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return f"{path} is not a directory (a symbolic link?): refusing to stage into it"
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            return f"{path} is not owned by this user: refusing to stage into it"
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return ""


def unit_states(units: list[str]) -> Callable[[], dict[str, str] | None]:
    """Ask systemd for the units' states now, in the background; the returned call collects
    them ({unit: state}, node_facts.py's parser; None: no units, or systemctl did not answer)."""
    if not units:
        return lambda: None
    facts = beside("node_facts")
    try:
        asked = subprocess.Popen(facts.states_argv(units), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    except OSError:
        return lambda: None

    def collect() -> dict[str, str] | None:
        try:
            out, _ = asked.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            asked.kill()
            return None
        states: dict[str, str] = facts.parse_states(units, out.decode(errors="replace"))
        return None if facts.UNKNOWN in states.values() else states

    return collect


def import_(kind: str, directory: str, staged: str, size: int, sha256: str,
            listed: int | None, units: list[str] | None = None) -> int:  # fmt: skip
    """Decompress stdin and write the member's `size` bytes to `staged`, checking them in the
    same pass (node_member.py); a member that fails its check leaves nothing staged."""
    os.umask(0o077)
    refused = private_dir(directory)
    if refused:
        report(size=0, sha256="", status=1, error=refused)
        return 1
    states = unit_states(units or [])
    member = beside("node_member").MemberCheck(kind, size, sha256, listed)
    writer, said = None, None
    if kind == "tree":
        os.mkdir(staged, 0o700)
        writer = subprocess.Popen([*EXTRACT_ARGV, staged], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        assert writer.stdin and writer.stderr
        sink, said = writer.stdin, Tail(writer.stderr)
        widen(sink)
    else:
        sink = open(staged, "xb")  # noqa: SIM115 (closed below, before the check)
    unpacker = subprocess.Popen(UNZSTD, stdin=0, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert unpacker.stdout and unpacker.stderr
    widen(unpacker.stdout)
    unpacker_said, broke = Tail(unpacker.stderr), ""
    try:
        member.passed(*pass_on(unpacker.stdout.fileno(), sink.fileno(), member.look, size))
        sink.close()
        member.after(unpacker.stdout.fileno())
    except member.Refusal as exc:
        member.refuse(exc)
    except OSError as exc:  # tar gave up (its reason below) or the disk is full
        broke = f"{staged}: {exc.strerror}"
    if member.found is not None or broke:  # stop at once: tar and zstd are killed
        for child in (writer, unpacker):
            if child is not None:
                child.kill()
    with contextlib.suppress(OSError):
        sink.close()
    if unpacker.wait() != 0 and not broke:
        member.unpacked(f"zstd: {unpacker_said.last_line() or 'failed'}")
    while os.read(0, CHUNK):
        pass  # the rest of the member, read so kato's sending ends and hears this report
    status = writer.wait() if writer is not None else 0
    problem, failed = None if broke else member.result(), ""
    if problem is None and (broke or status):
        said_last = said.last_line() if said is not None else ""
        failed = f"tar: {said_last}" if said_last else broke or f"tar: exit {status}"
    if problem is not None or failed:
        shutil.rmtree(staged, ignore_errors=True) if kind == "tree" else os.unlink(staged)
    entry, error = problem if problem is not None else (None, failed)
    report(size=member.seen, sha256=member.digest, status=1 if error else 0, error=error,
           entry=entry, invalid=problem is not None, units=states())  # fmt: skip
    return 1 if error else 0


def beside(name: str) -> Any:
    """A node program shipped beside this one on a node (a module of kato here)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return importlib.import_module(f"kato.remote.{name}")


def main(argv: list[str]) -> int:
    try:
        if len(argv) >= 3 and argv[0] == "export" and argv[1] in ("tree", "stream"):
            return export(argv[1], argv[2:])
        if len(argv) >= 7 and argv[0] == "import" and argv[1] in ("tree", "stream"):
            listed = None if argv[6] == "-" else int(argv[6])
            return import_(argv[1], argv[2], argv[3], int(argv[4]), argv[5], listed, argv[7:])
    except OSError as exc:
        report(size=0, sha256="", status=1, error=f"{exc.filename or ''}: {exc.strerror}")
        return 1
    report(size=0, sha256="", status=2, error=f"usage: {' '.join(argv)}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
