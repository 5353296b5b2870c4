"""When whoever reads kato's stdout or stderr goes away (`kato ... | head -1`, a closed ssh
session, a tracing tool or cron wrapper that closes its pipe), kato must neither die half-way
(leaving the cluster lock held) nor hang on a thread that died writing a progress line.

`guard` wraps sys.stdout and sys.stderr once, before any command runs, so this holds for every
command, every thread and both streams. The first write that fails points the stream's file
descriptor at /dev/null (so every later write, from any thread, a logging handler, a child
process or the interpreter's final flush, is dropped and cannot fail or block again), says so
on stderr when it was stdout that went, and stops the command the way Ctrl-C does:
SIGINT to the main thread, so the engine's Ctrl-C handling undoes what is in flight, the
journal gets its end line and the lock is released. kato then exits LOST (141, as a shell
reports SIGPIPE). When SIGINT is ignored (in the background of a non-interactive shell, or
started with SIGINT ignored) the command finishes with its output dropped and still exits 141.
Only a write that says the reader is gone counts (EPIPE, ECONNRESET, EIO of a hung-up terminal,
EBADF, a closed file): any other failure (a full disk under `--json > FILE`) is raised as it is.
Binary writes to stdout (`kato data export -` sends the archive there) are guarded the same way.
A hang-up (SIGHUP: the ssh session or terminal closed) is taken the same way: the streams on
that terminal are gone, and the command stops as on Ctrl-C instead of dying with the lock held.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, TextIO, TypeVar

T = TypeVar("T")
LOST = 141  # 128 + SIGPIPE: what a shell reports for a program killed by a closed pipe

_went: list[str] = []  # the streams that went away, in order
# reentrant: a SIGHUP or a nested write can reach went_away in the main thread while it holds it
_lock = threading.RLock()
GONE = {errno.EPIPE, errno.ECONNRESET, errno.EIO, errno.EBADF}  # the reader (or terminal) left


def _gone(exc: BaseException) -> bool:
    """Whether a write's failure says the stream's reader went away (ValueError: closed)."""
    return isinstance(exc, ValueError) or getattr(exc, "errno", None) in GONE


class Guarded:
    """A standard stream whose writes never raise: once its reader is gone they are dropped."""

    def __init__(self, name: str, fd: int, stream: TextIO | None) -> None:
        self.name = name
        self._fd = fd
        self._closed_at_start = stream is None
        self._stream = stream or open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
        self.gone = False
        self._binary: GuardedBinary | None = None
        self.terminal = not self._closed_at_start and self._stream.isatty()

    def write(self, text: str) -> int:
        if self._closed_at_start:
            self.went_away()
        return self.attempt(lambda: self._stream.write(text), len(text))

    def writelines(self, lines: Iterable[str]) -> None:
        for text in lines:
            self.write(text)

    def flush(self) -> None:
        self.attempt(self._stream.flush, None)

    def attempt(self, write: Callable[[], T], dropped: T) -> T:
        """`write()` while the reader is there; `dropped` once it is gone (this failure saying
        so included). Any other failure is raised as it is."""
        if not self.gone:
            try:
                return write()
            except (OSError, ValueError) as exc:
                if not _gone(exc):
                    raise
                self.went_away()
        return dropped

    @property
    def buffer(self) -> GuardedBinary:
        """The binary stream under it (an archive on stdout), guarded the same way."""
        if self._binary is None:
            self._binary = GuardedBinary(self, self._stream.buffer)
        return self._binary

    def isatty(self) -> bool:
        return not self.gone and self._stream.isatty()

    def fileno(self) -> int:
        return self._fd

    def __getattr__(self, name: str) -> Any:  # encoding, errors, closed, ...
        return getattr(self._stream, name)

    def hang_up(self) -> None:
        """The terminal behind this stream is gone (SIGHUP)."""
        self.went_away()

    def went_away(self) -> None:
        """Its reader is gone: drop every later write, and stop the command (once)."""
        if self.gone and self.name in _went:
            return
        with _lock:
            self.gone = True
            if self.name in _went:
                return
            first = not _went
            _went.append(self.name)
            _to_devnull(self._fd)
        if first:
            if self.name == "stdout":  # stdout is for data (an archive, --json): never there
                sys.stderr.write(
                    "warning: kato's stdout went away (its reader closed it): stopping as "
                    f"Ctrl-C does; exit code {LOST}\n"
                )
                sys.stderr.flush()
            _interrupt()


class GuardedBinary:
    """A standard stream's binary side whose writes never raise once its reader is gone."""

    def __init__(self, owner: Guarded, raw: Any) -> None:
        self._owner, self._raw = owner, raw

    def write(self, data: bytes | bytearray | memoryview) -> int:
        written: int = self._owner.attempt(lambda: self._raw.write(data), memoryview(data).nbytes)
        return written

    def flush(self) -> None:
        self._owner.attempt(self._raw.flush, None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _to_devnull(fd: int) -> None:
    """Every later write to `fd`, by anyone, lands in /dev/null and succeeds."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _interrupt() -> None:
    """SIGINT to the main thread, as a Ctrl-C at the terminal: it also breaks off a blocking
    wait there. Not when SIGINT is ignored: the command then finishes."""
    if callable(signal.getsignal(signal.SIGINT)):
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def _hung_up(number: int, frame: object) -> None:
    """The terminal went away (a closed ssh session): its streams are gone, and the command
    stops as on Ctrl-C, rather than dying at once with the lock held as SIGHUP's default would."""
    terminals = [s for s in (sys.stdout, sys.stderr) if isinstance(s, Guarded) and s.terminal]
    for stream in terminals:
        stream.hang_up()
    if not terminals:
        _interrupt()


def guard() -> None:
    """Wrap sys.stdout and sys.stderr (once), and take over SIGHUP unless it is ignored
    (nohup). A descriptor closed at start gets /dev/null first, so no socket or file kato
    opens can take its number and receive its output."""
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
        signal.signal(signal.SIGHUP, _hung_up)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if isinstance(stream, Guarded):
            continue
        try:
            os.fstat(fd)
        except OSError:
            _to_devnull(fd)
            stream = None
        setattr(sys, name, Guarded(name, fd, stream))


def lost() -> bool:
    """Whether stdout or stderr went away during this run."""
    return bool(_went)
