"""A conversation with one program on a node: lines written to its stdin while it runs, its
answers read line by line as they come (the Transport's run and streams give its output only
at the end). The operation's program on the core node (kato/remote/core_lock.py) speaks it.

Any failure (the program ended, the connection broke, the node silent for the idle timeout,
no answer within the time asked) is a LinkBroken: the caller then falls back to its ordinary
one-shot calls, so a broken conversation never loses a line or a lock.
"""

from __future__ import annotations

import select
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from kato.errors import NodeUnreachable
from kato.transport.ssh_exchange import Silent, close_channel

if TYPE_CHECKING:
    import paramiko

    from kato.transport.ssh import SshTransport

SEND_TIMEOUT = 30.0  # seconds a write may wait for the program to read
STDERR_KEEP = 4096


class LinkBroken(Exception):
    """The conversation is over before its end: what was not answered is unknown."""


class Link(Protocol):
    """What a caller needs of a conversation (SshLink here; tests run the program locally)."""

    def send(self, data: bytes) -> None: ...

    def readline(self, timeout: float) -> bytes: ...

    def close(self) -> None: ...


def open_link(transport: object, argv: Sequence[str]) -> Link | None:
    """Start argv on the transport's node; None when the transport has no such conversation
    (the caller makes its ordinary calls)."""
    from kato.transport.ssh import SshTransport

    if not isinstance(transport, SshTransport):
        return None
    return SshLink(transport, argv)


class SshLink:
    """One SSH session kept open: send() writes its stdin, readline() reads its stdout."""

    def __init__(self, transport: SshTransport, argv: Sequence[str]) -> None:
        self._transport = transport
        # the session is opened as every command's is (sudo, its password): NodeUnreachable when
        # the node does not answer, which Connections.call waits out for a rebooting node
        self._channel: paramiko.Channel = transport.open_channel(argv)
        self._channel.settimeout(SEND_TIMEOUT)
        transport.liveness.heard()
        self._pending = bytearray()
        self._stderr = bytearray()

    def send(self, data: bytes) -> None:
        try:
            self._channel.sendall(data)
        except Exception as exc:
            self.close()
            raise LinkBroken(f"could not write to the program: {exc}") from None

    def readline(self, timeout: float) -> bytes:
        """The next line of output (without its newline), within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        try:
            while b"\n" not in self._pending:
                self._read_ready()
                if b"\n" in self._pending:
                    break
                if self._channel.eof_received or self._channel.closed:
                    self._read_ready()  # its last answer may have come with its end
                    if b"\n" in self._pending:
                        break
                    raise LinkBroken(f"the program ended: {self._said()}")
                self._transport.check_heard(self._channel)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LinkBroken(f"no answer within {timeout:g} s")
                select.select([self._channel], [], [], min(left, 0.5))
        except (Silent, NodeUnreachable, OSError, EOFError) as exc:
            self.close()
            raise LinkBroken(f"the connection failed: {exc or 'silent'}") from None
        except LinkBroken:
            self.close()
            raise
        line, _, rest = self._pending.partition(b"\n")
        self._pending = bytearray(rest)
        return bytes(line)

    def _read_ready(self) -> None:
        while self._channel.recv_ready():
            self._pending += self._channel.recv(65536)
            self._transport.liveness.heard()
        while self._channel.recv_stderr_ready():
            self._stderr += self._channel.recv_stderr(STDERR_KEEP)
            del self._stderr[:-STDERR_KEEP]

    def _said(self) -> str:
        lines = self._stderr.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def close(self) -> None:
        """End the conversation: the program sees the end of its input."""
        close_channel(self._channel)
