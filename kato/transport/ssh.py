"""SSH to nodes with paramiko: one connection per node, reused for every command of a run; a
timeout on every phase and a node's silence noticed. The pieces live beside it: connecting and
logging in (ssh_connect), host keys (ssh_hostkeys), a command's channel (ssh_exchange), sudo
(ssh_sudo), OpenSSH config and jump hosts (ssh_route). paramiko stays inside kato.transport and
is imported lazily there: `kato --help` must stay fast.

fabric's Connection is not used: it installs AutoAddPolicy, loads no known_hosts and inlines
environment variables into the command line, which are the three things kato must not do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from kato.errors import NodeUnreachable, RemoteCommandFailed
from kato.transport import ssh_library
from kato.transport.base import CommandResult, SshOptions, command_line
from kato.transport.liveness import Liveness
from kato.transport.ssh_connect import close_all, login, through_jumps
from kato.transport.ssh_exchange import (
    CHUNK,
    Collected,
    LocalFailure,
    Silent,
    close_quietly,
    drain,
    local,
    settle,
)
from kato.transport.ssh_hostkeys import load_host_keys
from kato.transport.ssh_route import route
from kato.transport.ssh_sudo import WITH_PASSWORD, choose_sudo

if TYPE_CHECKING:
    import paramiko

SAFE_WRITE = Path(__file__).parents[1] / "remote" / "safe_write.py"
SAFE_WRITE_BOOT = (  # as kato.remote.safe_write.BOOT (a unit test keeps them equal)
    "import sys; n = int(sys.stdin.buffer.readline()); "
    "exec(compile(sys.stdin.buffer.read(n), 'kato-safe-write', 'exec'))"
)
SEND = 1 << 16  # a send takes at most a packet's worth (32 KiB) anyway


class SshTransport:
    """One SSH connection to one node, reused for every command of a run."""

    def __init__(self, node: str, address: str, port: int, options: SshOptions) -> None:
        self.node = node
        self.address = address
        self.port = port
        self.options = options
        self._sudo_prefix = ""
        self._sudo_password: str | None = None
        self._client = self._connect()
        self.liveness = Liveness(options.idle_timeout)
        try:  # the login's user decides, also when it comes from ssh.config's User
            self._sudo_prefix, self._sudo_password = choose_sudo(
                node, self._login_user, options.sudo_password, self._try_sudo
            )
        except BaseException:
            self.close()
            raise

    def _connect(self) -> paramiko.SSHClient:
        ssh_library.load(self.options.ssh_config)  # the first connection imports paramiko
        keys = load_host_keys(Path(self.options.known_hosts), self.node)
        hops = route(self.address, self.port, self.options)
        self._login_user = hops[-1].user
        self._jumps, sock = through_jumps(self.node, hops, self.options, keys)
        try:
            return login(self.node, hops[-1], sock, self.options, keys)
        except BaseException:
            close_all(self._jumps)
            raise

    def _try_sudo(self, argv: Sequence[str], prefix: str) -> CommandResult:
        self._sudo_prefix = prefix
        self._sudo_password = self.options.sudo_password if prefix == WITH_PASSWORD else None
        return self.run(argv, check=False)

    # --- commands ----------------------------------------------------------------------------

    def _command(self, argv: Sequence[str], raw: bool = False) -> str:
        line = command_line(argv)
        return line if raw else self._sudo_prefix + line

    def open_channel(self, argv: Sequence[str], raw: bool = False) -> paramiko.Channel:
        """A session running argv behind the login's sudo (its password written first): the
        commands below, and a conversation with a program (ssh_link.py), start here. Whoever
        reads from it tells `liveness` when the node was heard and calls `check_heard`."""
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise NodeUnreachable(self.node, "session", "the connection was closed")
        try:
            channel = transport.open_session(timeout=self.options.connect_timeout)
            channel.exec_command(self._command(argv, raw))
            if self._sudo_password is not None and not raw:
                channel.sendall((self._sudo_password + "\n").encode())
        except Exception as exc:
            raise NodeUnreachable(
                self.node, "session", f"could not start a command: {exc}"
            ) from None
        return channel

    def _exchange(
        self,
        argv: Sequence[str],
        feed: Callable[[paramiko.Channel], None],
        on_stdout: Callable[[bytes], object],
        timeout: float,
        idle: bool,
        raw: bool = False,
    ) -> tuple[int, str, float]:
        """Start argv, feed its stdin, read its output to the end: (status, stderr, seconds)."""
        import paramiko

        started = time.monotonic()
        channel = self.open_channel(argv, raw)
        # the node confirmed the channel: a sign of life, so a connection left idle longer than
        # the idle timeout (between two steps of a rollout) is not taken for a silent node
        self.liveness.heard()
        stderr = bytearray()
        try:
            try:
                feed(channel)
            except TimeoutError:
                close_quietly(channel)
                raise NodeUnreachable(
                    self.node, "command", "the node stopped reading its input"
                ) from None
            except LocalFailure:
                settle(channel)  # the command ends before the caller cleans up after it
                raise
            channel.shutdown_write()
            status = drain(
                channel,
                self.node,
                argv,
                local(on_stdout),
                stderr,
                timeout,
                idle,
                self.liveness.heard,
                self.check_heard,
            )
        except Silent:
            close_quietly(channel)
            raise self._silent() from None
        except LocalFailure as failure:
            raise failure.original from None  # our sink or source failed, not the node
        except (OSError, EOFError, paramiko.SSHException) as exc:
            close_quietly(channel)
            raise self._lost(exc) from None
        return status, stderr.decode(errors="replace"), time.monotonic() - started

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        check: bool = True,
        raw: bool = False,
    ) -> CommandResult:
        """Run argv (through sudo unless root, or `raw`) and wait for it to finish."""
        stdout = Collected(self.node, argv)
        status, stderr, seconds = self._exchange(
            argv,
            lambda channel: channel.sendall(stdin) if stdin else None,
            stdout.write,
            timeout or self.options.command_timeout,
            idle=False,
            raw=raw,
        )
        if check and status != 0:
            raise RemoteCommandFailed(self.node, tuple(argv), status, stderr)
        return CommandResult(self.node, tuple(argv), status, stdout.text(), stderr, seconds)

    def check_heard(self, channel: paramiko.Channel) -> None:
        """Silent when the node has sent nothing, not even a keepalive answer, for the idle
        timeout (a frozen node, a cut cable), however long the command may take."""
        if channel.eof_received or channel.closed:
            return
        transport = self._client.get_transport()
        if (
            transport is not None
            and self.liveness.silent_for(transport) > self.options.idle_timeout
        ):
            raise Silent()

    def _lost(self, exc: BaseException) -> NodeUnreachable:
        """The connection broke mid-command; paramiko's EOFError says nothing, so say what
        it means rather than print an empty reason."""
        reason = str(exc) or "the node closed it (it crashed, rebooted or was cut off)"
        return NodeUnreachable(
            self.node,
            "transfer",
            f"the connection failed: {reason}",
            hint=f"check that {self.node} is up and answers (`kato status`), then run the "
            "command again",
        )

    def _silent(self) -> NodeUnreachable:
        seconds = f"{self.options.idle_timeout:g}"
        return NodeUnreachable(
            self.node,
            "silent",
            f"{self.node} sent nothing for {seconds} s (no output, no answer to keepalives)",
            hint="the node may be hung or cut off; ssh.idle_timeout in the cluster file "
            "(or KATO_IDLE_TIMEOUT) sets how long kato waits",
        )

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        """Write a file as kato's safe writes do: a checked directory, a new temporary file,
        fsync, rename; never through a planted link. The node program is
        kato/remote/safe_write.py, read as data (the transport sits below kato.remote), with
        the same bootstrap as its argv()."""
        program = SAFE_WRITE.read_bytes()
        argv = ("python3", "-c", SAFE_WRITE_BOOT, "write", f"{mode:o}", "-", path)
        self.run(argv, stdin=b"%d\n" % len(program) + program + data)

    def get(self, path: str) -> bytes:
        argv = ("cat", "--", path)
        sink = Collected(self.node, argv)
        result = self.stream_out(argv, sink)  # type: ignore[arg-type]
        if not result.ok:
            raise RemoteCommandFailed(self.node, result.argv, result.status, result.stderr)
        return bytes(sink.data)

    def stream_out(
        self,
        argv: Sequence[str],
        sink: BinaryIO,
        *,
        idle_timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        status, stderr, seconds = self._exchange(
            argv,
            lambda channel: channel.sendall(stdin) if stdin else None,
            sink.write,
            idle_timeout or self.options.command_timeout,
            idle=True,
        )
        return CommandResult(self.node, tuple(argv), status, "", stderr, seconds)

    def stream_in(
        self, argv: Sequence[str], source: BinaryIO, *, idle_timeout: float | None = None
    ) -> CommandResult:
        timeout = idle_timeout or self.options.command_timeout

        read = local(source.read)

        def feed(channel: paramiko.Channel) -> None:
            channel.settimeout(self.liveness.probe_every)
            waited_since = time.monotonic()
            while chunk := read(CHUNK):
                view = memoryview(chunk)
                while view:
                    try:
                        sent = channel.send(bytes(view[:SEND]))
                    except TimeoutError:
                        self.check_heard(channel)
                        if time.monotonic() - waited_since > timeout:
                            raise
                        continue
                    if sent == 0:
                        raise EOFError("the channel closed")
                    view = view[sent:]
                    waited_since = time.monotonic()
                    self.liveness.heard()

        stdout = Collected(self.node, argv)
        status, stderr, seconds = self._exchange(argv, feed, stdout.write, timeout, idle=True)
        return CommandResult(self.node, tuple(argv), status, stdout.text(), stderr, seconds)

    def close(self) -> None:
        self._client.close()
        close_all(self._jumps)
