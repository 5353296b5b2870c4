"""One command's channel: reading stdout and stderr to the end under the command's timeout
and the node's liveness, and telling our own side's failures (a sink, a source) from the node's."""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeVar

from kato.errors import NodeOutputTooLarge, NodeUnreachable
from kato.transport.base import command_line

if TYPE_CHECKING:
    import paramiko

STDERR_KEEP = 1 << 20  # a chatty command's error output is kept up to this, then dropped
CHUNK = 1 << 20  # 1 MiB reads: measured 200 MB/s against 140 MB/s with 32 KiB
# what kato keeps of a command's stdout in memory: far above any answer of kato's own node
# programs (node facts of a large cluster are a few MiB), far below what would hurt the core
OUTPUT_KEEP = 64 << 20


class Silent(Exception):
    """The node was silent for the idle timeout (turned into NodeUnreachable by _exchange)."""


class LocalFailure(Exception):
    """An error of this machine's side of a stream (the sink or source), carried through the
    transport's own error handling unchanged."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class Collected:
    """A command's stdout gathered in memory, refused past `limit` bytes: a node (hostile, or
    running a replaced program) cannot make kato's memory grow without bound. Streams that
    go to disk (stream_out into a file) do not pass through here and stay unbounded."""

    def __init__(self, node: str, argv: Sequence[str], limit: int = OUTPUT_KEEP) -> None:
        self.node, self.argv, self.limit = node, tuple(argv), limit
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        if len(self.data) + len(chunk) > self.limit:
            raise NodeOutputTooLarge(self.node, self.argv, self.limit)
        self.data.extend(chunk)
        return len(chunk)

    def text(self) -> str:
        return self.data.decode(errors="replace")


def close_quietly(channel: paramiko.Channel) -> None:
    """Close a channel whose connection may be gone: paramiko then raises EOFError from close
    itself, which must not replace the error that is being reported."""
    import paramiko

    with suppress(OSError, EOFError, paramiko.SSHException):
        close_channel(channel)


def close_channel(channel: paramiko.Channel) -> None:
    """Close a channel, perhaps mid-stream (an answer refused past its bound, a timeout), its
    select() pipe first, while nothing can write to it. paramiko's Channel.close closes that
    pipe (made by Channel.fileno) holding only the channel's lock, but the transport's thread
    writes a byte to it holding a buffer's lock (BufferedPipe.feed) as data arrives: data still
    arriving for the channel could meet a descriptor closed a moment before, and EBADF in that
    thread ends the whole connection ("Socket exception: Bad file descriptor (9)"; seen in a
    full suite run after two bounded refusals, reproduced by looping them at load 2-3), while
    a descriptor reused meanwhile would get the byte. Holding the channel's lock and both
    buffers' (paramiko's own order) makes the pipe's close atomic for every writer; closed, it
    ignores later sets."""
    # paramiko's private attributes (4.0: Channel._pipe, BufferedPipe._lock): where a release
    # lacks them, the channel is closed as before
    pipe = getattr(channel, "_pipe", None)
    if pipe is not None:
        stdout, stderr = channel.in_buffer, channel.in_stderr_buffer
        if hasattr(stdout, "_lock") and hasattr(stderr, "_lock"):
            with channel.lock, stdout._lock, stderr._lock:
                if channel._pipe is pipe:  # type: ignore[attr-defined]
                    channel._pipe = None  # type: ignore[attr-defined]
                    pipe.close()
    channel.close()


R = TypeVar("R")


def local(function: Callable[..., R]) -> Callable[..., R]:
    def guarded(*args: Any) -> R:
        try:
            return function(*args)
        except Exception as exc:
            raise LocalFailure(exc) from exc

    return guarded


def drain(
    channel: paramiko.Channel,
    node: str,
    argv: Sequence[str],
    on_stdout: Callable[[bytes], object],
    stderr: bytearray,
    timeout: float,
    idle: bool,
    heard: Callable[[], None],
    check_heard: Callable[[paramiko.Channel], None],
) -> int:
    """Read stdout and stderr until the command exits; `timeout` bounds the whole command,
    or (idle) the time without any output. `heard` is told of every output; `check_heard`
    raises Silent when the node has been silent too long."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            while channel.recv_ready():
                on_stdout(channel.recv(CHUNK))
                heard()
                deadline = time.monotonic() + timeout if idle else deadline
            while channel.recv_stderr_ready():
                stderr.extend(channel.recv_stderr(CHUNK)[: max(0, STDERR_KEEP - len(stderr))])
                heard()
                deadline = time.monotonic() + timeout if idle else deadline
            # The exit status is a request outside the flow control, so it can overtake
            # output still waiting for window space: only EOF says the output is complete.
            if (
                (channel.eof_received or channel.closed)
                and channel.exit_status_ready()
                and not channel.recv_ready()
                and not channel.recv_stderr_ready()
            ):
                return _exit_status(channel, node, argv)
            check_heard(channel)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NodeUnreachable(
                    node,
                    "command",
                    f"`{command_line(argv)}` gave no "
                    f"{'output' if idle else 'result'} within {timeout:g}s",
                )
            select.select([channel], [], [], min(remaining, 1.0))
    finally:
        close_quietly(channel)


def _exit_status(channel: paramiko.Channel, node: str, argv: Sequence[str]) -> int:
    """The command's exit status; paramiko's -1 on a connection that died (a firewall dropped
    it, the node went away) is no status of the command but a lost connection."""
    status = channel.recv_exit_status()
    transport = channel.get_transport()
    if status == -1 and (transport is None or not transport.is_active()):
        raise NodeUnreachable(
            node,
            "transfer",
            f"the connection was lost while `{command_line(argv)}` ran",
            hint="a firewall or NAT may drop idle connections: ssh.keepalive (seconds) sends "
            "a keepalive that often (docs/ssh.md)",
        )
    return status


def settle(channel: paramiko.Channel, seconds: float = 30.0) -> None:
    """Our input failed mid-stream (the source raised): end the command's input and wait, for at
    most `seconds`, until it exits, then close the channel. A caller that then cleans up after
    the command (an import removing its staging dir) no longer races a program still writing
    what it had received. Its output is read and dropped meanwhile, so it cannot block on it."""
    import paramiko

    deadline = time.monotonic() + seconds
    try:
        channel.shutdown_write()
        while not channel.exit_status_ready() and time.monotonic() < deadline:
            ready = channel.recv_ready() or channel.recv_stderr_ready()
            if channel.recv_ready():
                channel.recv(CHUNK)
            if channel.recv_stderr_ready():
                channel.recv_stderr(CHUNK)
            if not ready:
                time.sleep(0.05)
    except (OSError, EOFError, paramiko.SSHException):  # the connection went: nothing to wait for
        pass
    finally:
        close_quietly(channel)
