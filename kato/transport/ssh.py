"""SSH to nodes with paramiko: kato's own known_hosts, refusal of unknown keys, a timeout on
every phase. The only module that imports paramiko (lazily: `kato --help` must stay fast).

fabric's Connection is not used: it installs AutoAddPolicy, loads no known_hosts and inlines
environment variables into the command line, which are the three things kato must not do.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import select
import socket
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from kato.errors import HostKeyRefused, NodeUnreachable, RemoteCommandFailed
from kato.transport.base import CommandResult, SshOptions, command_line
from kato.transport.liveness import Liveness
from kato.transport.ssh_route import Hop, route

if TYPE_CHECKING:
    import paramiko

STDERR_KEEP = 1 << 20  # a chatty command's error output is kept up to this, then dropped
CHUNK = 1 << 20  # 1 MiB reads: measured 200 MB/s against 140 MB/s with 32 KiB
SAFE_WRITE = Path(__file__).parents[1] / "remote" / "safe_write.py"
SAFE_WRITE_BOOT = (  # as kato.remote.safe_write.BOOT (a unit test keeps them equal)
    "import sys; n = int(sys.stdin.buffer.readline()); "
    "exec(compile(sys.stdin.buffer.read(n), 'kato-safe-write', 'exec'))"
)
SEND = 1 << 16  # a send takes at most a packet's worth (32 KiB) anyway


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_problem(path: Path) -> str | None:
    """Why this known_hosts file cannot be trusted, or None."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return f"there is no known_hosts file at {path}"
    if stat.S_ISLNK(info.st_mode):
        return f"{path} is a symbolic link (kato trusts only a real file)"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    if info.st_mode & 0o022:
        return f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    if info.st_uid not in (0, os.geteuid()):
        return f"{path} is owned by uid {info.st_uid}, not by root or you"
    return None


def host_key_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def load_host_keys(path: Path, node: str) -> paramiko.HostKeys:
    import paramiko

    logging.getLogger("paramiko").addHandler(logging.NullHandler())  # errors reach us as data
    logging.getLogger("paramiko").propagate = False
    problem = known_hosts_problem(path)
    if problem:
        missing = problem.startswith("there is no known_hosts")
        raise HostKeyRefused(
            node,
            problem,
            None,
            hint=f"record the node's key with `kato node trust --node {node}` (it creates the file)"
            if missing
            else "make it a regular file owned by root with mode 0600 or 0644, and record "
            f"keys with `kato node trust --node {node}`",
        )
    try:
        return paramiko.HostKeys(str(path))
    except (OSError, paramiko.SSHException) as exc:
        raise HostKeyRefused(
            node, f"cannot read {path}: {exc}", None, hint="fix or remove the bad line"
        ) from None


def _connect_socket(node: str, address: str, port: int, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except TimeoutError:
        raise NodeUnreachable(
            node,
            "connect",
            f"no answer from {address}:{port} within {timeout:g}s",
            hint="is the node up and reachable?",
        ) from None
    except OSError as exc:
        raise NodeUnreachable(
            node,
            "connect",
            f"{address}:{port}: {exc.strerror or exc}",
            hint="is the node up and sshd running?",
        ) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # 48 ms -> 5 ms per command
    readable, _, _ = select.select([sock], [], [], timeout)  # the banner, not yet consumed
    if not readable:
        sock.close()
        raise NodeUnreachable(
            node,
            "banner",
            f"{address}:{port} accepted the connection but sent no SSH banner within {timeout:g}s",
            hint="the node or its sshd may be hung",
        )
    return sock


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
        self._liveness = Liveness(options.idle_timeout)
        try:
            self._choose_sudo()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> paramiko.SSHClient:
        keys = load_host_keys(Path(self.options.known_hosts), self.node)
        hops = route(self.address, self.port, self.options)
        self._jumps, sock = _through_jumps(self.node, hops, self.options, keys)
        try:
            return _login(self.node, hops[-1], sock, self.options, keys)
        except BaseException:
            _close_all(self._jumps)
            raise

    # --- commands ----------------------------------------------------------------------------

    def _choose_sudo(self) -> None:
        """How a user other than root runs commands: `sudo -n` when sudo asks it for no
        password, else `sudo -S` with the password written to the command's stdin first
        (never in argv, so never in `ps`); -k makes sudo read it every time, so it can never
        be left over as input of the command."""
        user = self.options.user
        if user == "root":
            return
        self._sudo_prefix = "sudo -n -- "
        if self.run(("sudo", "-k", "-n", "true"), check=False, raw=True).ok:
            return
        password = self.options.sudo_password
        if password is None:
            return  # each command then fails with sudo's own message, naming the fix
        self._sudo_prefix, self._sudo_password = "sudo -k -S -p '' -- ", password
        tried = self.run(("true",), check=False)
        if not tried.ok:
            raise NodeUnreachable(
                self.node,
                "sudo",
                f"sudo as {user} did not accept the password: {tried.error_line}",
                hint="check the file or variable ssh.sudo_password_file/_env names, and that "
                f"{user} may use sudo on the node",
            )

    def _command(self, argv: Sequence[str], raw: bool = False) -> str:
        line = command_line(argv)
        return line if raw else self._sudo_prefix + line

    def _open(self, argv: Sequence[str], raw: bool = False) -> paramiko.Channel:
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
        channel = self._open(argv, raw)
        # the node confirmed the channel: a sign of life, so a connection left idle longer than
        # the idle timeout (between two steps of a rollout) is not taken for a silent node
        self._liveness.heard()
        stderr = bytearray()
        try:
            try:
                feed(channel)
            except TimeoutError:
                channel.close()
                raise NodeUnreachable(
                    self.node, "command", "the node stopped reading its input"
                ) from None
            channel.shutdown_write()
            status = self._drain(channel, argv, _local(on_stdout), stderr, timeout, idle)
        except _Silent:
            channel.close()
            raise self._silent() from None
        except _LocalFailure as failure:
            raise failure.original from None  # our sink or source failed, not the node
        except (OSError, EOFError, paramiko.SSHException) as exc:
            channel.close()
            raise NodeUnreachable(self.node, "transfer", f"the connection failed: {exc}") from None
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
        stdout = bytearray()
        status, stderr, seconds = self._exchange(
            argv,
            lambda channel: channel.sendall(stdin) if stdin else None,
            stdout.extend,
            timeout or self.options.command_timeout,
            idle=False,
            raw=raw,
        )
        if check and status != 0:
            raise RemoteCommandFailed(self.node, tuple(argv), status, stderr)
        return CommandResult(
            self.node, tuple(argv), status, stdout.decode(errors="replace"), stderr, seconds
        )

    def _drain(
        self,
        channel: paramiko.Channel,
        argv: Sequence[str],
        on_stdout: Callable[[bytes], object],
        stderr: bytearray,
        timeout: float,
        idle: bool,
    ) -> int:
        """Read stdout and stderr until the command exits; `timeout` bounds the whole command,
        or (idle) the time without any output."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                while channel.recv_ready():
                    on_stdout(channel.recv(CHUNK))
                    self._liveness.heard()
                    deadline = time.monotonic() + timeout if idle else deadline
                while channel.recv_stderr_ready():
                    stderr.extend(channel.recv_stderr(CHUNK)[: max(0, STDERR_KEEP - len(stderr))])
                    self._liveness.heard()
                    deadline = time.monotonic() + timeout if idle else deadline
                # The exit status is a request outside the flow control, so it can overtake
                # output still waiting for window space: only EOF says the output is complete.
                if (
                    (channel.eof_received or channel.closed)
                    and channel.exit_status_ready()
                    and not channel.recv_ready()
                    and not channel.recv_stderr_ready()
                ):
                    return channel.recv_exit_status()
                self._check_heard(channel)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise NodeUnreachable(
                        self.node,
                        "command",
                        f"`{command_line(argv)}` gave no "
                        f"{'output' if idle else 'result'} within {timeout:g}s",
                    )
                select.select([channel], [], [], min(remaining, 1.0))
        finally:
            channel.close()

    def _check_heard(self, channel: paramiko.Channel) -> None:
        """_Silent when the node has sent nothing, not even a keepalive answer, for the idle
        timeout (a frozen node, a cut cable), however long the command may take."""
        if channel.eof_received or channel.closed:
            return
        transport = self._client.get_transport()
        if (
            transport is not None
            and self._liveness.silent_for(transport) > self.options.idle_timeout
        ):
            raise _Silent()

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
        sink = io.BytesIO()
        result = self.stream_out(("cat", "--", path), sink)
        if not result.ok:
            raise RemoteCommandFailed(self.node, result.argv, result.status, result.stderr)
        return sink.getvalue()

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

        read = _local(source.read)

        def feed(channel: paramiko.Channel) -> None:
            channel.settimeout(self._liveness.probe_every)
            waited_since = time.monotonic()
            while chunk := read(CHUNK):
                view = memoryview(chunk)
                while view:
                    try:
                        sent = channel.send(bytes(view[:SEND]))
                    except TimeoutError:
                        self._check_heard(channel)
                        if time.monotonic() - waited_since > timeout:
                            raise
                        continue
                    if sent == 0:
                        raise EOFError("the channel closed")
                    view = view[sent:]
                    waited_since = time.monotonic()
                    self._liveness.heard()

        stdout = bytearray()
        status, stderr, seconds = self._exchange(argv, feed, stdout.extend, timeout, idle=True)
        return CommandResult(
            self.node, tuple(argv), status, stdout.decode(errors="replace"), stderr, seconds
        )

    def close(self) -> None:
        self._client.close()
        _close_all(self._jumps)


def _gcm_first(*args: Any, **kwargs: Any) -> paramiko.Transport:
    """A transport preferring AES-GCM (one pass through OpenSSL per packet, no separate MAC):
    a 200 MB stream took 1.1-1.4 s against 1.8-2.0 s with aes128-ctr + hmac-sha2-256 here.
    Only the order changes: a server without GCM still gets the usual ciphers."""
    import paramiko

    transport = paramiko.Transport(*args, **kwargs)
    options = transport.get_security_options()
    gcm = tuple(c for c in options.ciphers if c.endswith("-gcm@openssh.com"))
    options.ciphers = gcm + tuple(c for c in options.ciphers if c not in gcm)
    return transport


class _Silent(Exception):
    """The node was silent for the idle timeout (turned into NodeUnreachable by _exchange)."""


class _LocalFailure(Exception):
    """An error of this machine's side of a stream (the sink or source), carried through the
    transport's own error handling unchanged."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


R = TypeVar("R")


def _local(function: Callable[..., R]) -> Callable[..., R]:
    def guarded(*args: Any) -> R:
        try:
            return function(*args)
        except Exception as exc:
            raise _LocalFailure(exc) from exc

    return guarded


@dataclass(frozen=True)
class OfferedKey:
    key_type: str
    base64: str
    fingerprint: str


def offered_host_key(
    node: str, address: str, port: int, timeout: float, options: SshOptions | None = None
) -> OfferedKey:
    """The host key a node offers, read by a key exchange without authenticating (through
    its jump hosts, whose own keys must already be trusted, when `options` names some)."""
    import paramiko

    jumps: list[paramiko.SSHClient] = []
    if options is not None and options.ssh_config:
        hops = route(address, port, options)
        keys = load_host_keys(Path(options.known_hosts), node)
        jumps, sock = _through_jumps(node, hops, options, keys)
        address, port = hops[-1].hostname, hops[-1].port
    else:
        sock = _connect_socket(node, address, port, timeout)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise NodeUnreachable(node, "handshake", f"{address}:{port}: {exc}") from None
    finally:
        transport.close()
        _close_all(jumps)
    return OfferedKey(key.get_name(), key.get_base64(), fingerprint(key))


def _refuse_unknown(
    node: str, known_hosts: str, jump: bool = False
) -> paramiko.MissingHostKeyPolicy:
    """paramiko's missing-host-key policy for kato: refuse, and say what was offered."""
    import paramiko

    class RefuseUnknown(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
            trust = (
                f"add the line `{hostname} {key.get_name()} {key.get_base64()}` to {known_hosts}"
                if jump
                else f"`kato node trust --node {node} --fingerprint {fingerprint(key)}`"
            )
            raise HostKeyRefused(
                node,
                f"{hostname} is not in {known_hosts}",
                fingerprint(key),
                hint=f"check the fingerprint out of band, then {trust}",
            )

    return RefuseUnknown()


def _through_jumps(
    node: str, hops: tuple[Hop, ...], options: SshOptions, keys: paramiko.HostKeys
) -> tuple[list[paramiko.SSHClient], Any]:
    """Log in to each jump host in turn (its key checked like a node's) and open a tunnel to
    the next hop: the logged-in jump hosts and a socket-like channel to the last hop."""
    jumps: list[paramiko.SSHClient] = []
    first = hops[0]
    sock: Any = _connect_socket(
        _who(node, first, hops), first.hostname, first.port, options.connect_timeout
    )
    try:
        for hop, onward in zip(hops, hops[1:], strict=False):
            client = _login(_who(node, hop, hops), hop, sock, options, keys, jump=True)
            jumps.append(client)
            sock = _tunnel(node, client, hop, onward, options.connect_timeout)
    except BaseException:
        _close_all(jumps)
        raise
    return jumps, sock


def _who(node: str, hop: Hop, hops: tuple[Hop, ...]) -> str:
    return node if hop is hops[-1] else f"{node} (jump host {hop.name})"


def _tunnel(node: str, client: paramiko.SSHClient, hop: Hop, onward: Hop, timeout: float) -> Any:
    transport = client.get_transport()
    try:
        assert transport is not None
        return transport.open_channel(
            "direct-tcpip", (onward.hostname, onward.port), ("127.0.0.1", 0), timeout=timeout
        )
    except Exception as exc:
        raise NodeUnreachable(
            node,
            "connect",
            f"jump host {hop.name} could not reach {onward.hostname}:{onward.port}: {exc}",
            hint="is the node up, and may the jump host forward to it (AllowTcpForwarding)?",
        ) from None


def _login(
    who: str,
    hop: Hop,
    sock: Any,
    options: SshOptions,
    keys: paramiko.HostKeys,
    jump: bool = False,
) -> paramiko.SSHClient:
    """Key exchange (the host key checked against kato's known_hosts) and authentication."""
    import paramiko

    client = paramiko.SSHClient()
    for name in keys:
        for key_type, key in keys[name].items():
            client.get_host_keys().add(name, key_type, key)
    client.set_missing_host_key_policy(_refuse_unknown(who, options.known_hosts, jump))
    try:
        client.connect(
            hop.hostname,
            port=hop.port,
            username=hop.user,
            key_filename=list(hop.identity_files) or None,  # type: ignore[arg-type]  # a list works
            passphrase=options.passphrase,
            sock=sock,
            timeout=options.connect_timeout,
            banner_timeout=options.connect_timeout,
            auth_timeout=options.auth_timeout,
            channel_timeout=options.connect_timeout,
            allow_agent=options.agent,
            look_for_keys=not hop.identity_files,
            transport_factory=_gcm_first,
        )
    except BaseException as exc:
        client.close()
        sock.close()
        raise _explain(who, hop, options, exc, jump) from None
    transport = client.get_transport()
    if transport is not None and options.keepalive > 0:
        transport.set_keepalive(max(1, int(options.keepalive)))
    return client


def _explain(
    who: str, hop: Hop, options: SshOptions, exc: BaseException, jump: bool
) -> BaseException:
    import paramiko

    if isinstance(exc, HostKeyRefused | NodeUnreachable):
        return exc
    if isinstance(exc, paramiko.BadHostKeyException):
        again = (
            f"replace the line of {hop.known_hosts_name} in {options.known_hosts}"
            if jump
            else f"`kato node trust --node {who} --fingerprint {fingerprint(exc.key)}`"
        )
        return HostKeyRefused(
            who,
            f"the key differs from the one in {options.known_hosts}",
            fingerprint(exc.key),
            hint=f"if it was reinstalled, check the fingerprint out of band, then {again}",
        )
    if isinstance(exc, paramiko.PasswordRequiredException) or "encrypted" in str(exc):
        return NodeUnreachable(
            who,
            "auth",
            f"the key for {hop.user}@{hop.hostname} is protected by a passphrase kato was "
            "not given",
            hint="name a file or variable holding it: ssh.passphrase_file or "
            "ssh.passphrase_env (docs/ssh.md), or use the agent (ssh.agent: true)",
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return NodeUnreachable(
            who,
            "auth",
            f"{hop.user}@{hop.hostname} was not accepted: {exc}",
            hint="check ssh.user and ssh.identity_file (or the node's own user and "
            "identity_file, or ssh.config)",
        )
    text = str(exc) or type(exc).__name__
    if "no authentication methods" in text.lower():
        return NodeUnreachable(
            who,
            "auth",
            f"no key to log in to {hop.user}@{hop.hostname} with",
            hint="set ssh.identity_file (or the node's identity_file), or ssh.agent: true "
            "with the key in your agent",
        )
    phase = "banner" if "banner" in text.lower() else "handshake"
    return NodeUnreachable(who, phase, f"{hop.hostname}:{hop.port}: {text}")


def _close_all(clients: list[paramiko.SSHClient]) -> None:
    for client in reversed(clients):
        client.close()
