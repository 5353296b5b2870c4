"""The Transport protocol every node connection speaks, and how argv becomes a command line."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class CommandResult:
    node: str
    argv: tuple[str, ...]
    status: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def error_line(self) -> str:
        """The last line of its error output, or its exit status when it said nothing."""
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit {self.status}"


@dataclass(frozen=True)
class SshOptions:
    """How to reach nodes: everything the SSH transport needs from the cluster file."""

    user: str
    identity_file: str | None
    known_hosts: str
    connect_timeout: float
    auth_timeout: float
    command_timeout: float
    ssh_config: str | None = None  # an OpenSSH client config to resolve addresses with
    agent: bool = False
    passphrase: str | None = field(default=None, repr=False)  # of the identity file
    keepalive: float = 15.0  # seconds between keepalive messages (0: none)
    sudo_password: str | None = field(default=None, repr=False)  # fed to `sudo -S` on stdin
    given: frozenset[str] = frozenset()  # user/identity_file/port spelled out: beat ssh_config
    jump_user: str | None = None  # the login for jump hosts the config does not name one for
    jump_identity_file: str | None = None
    idle_timeout: float = 20.0  # a node that sends nothing (not even a keepalive answer)


def command_line(argv: Sequence[str]) -> str:
    """The one place argv is quoted for a remote shell: every element stays one token."""
    if not argv:
        raise ValueError("an empty command")
    return shlex.join(argv)


class Transport(Protocol):
    """A connection to one node: run, put, get, stream, close."""

    node: str

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        check: bool = True,
    ) -> CommandResult: ...

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None: ...

    def get(self, path: str) -> bytes: ...

    def stream_out(
        self,
        argv: Sequence[str],
        sink: BinaryIO,
        *,
        idle_timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run argv (given `stdin`, then end of input) and copy its stdout into sink as it
        comes (constant memory)."""
        ...

    def stream_in(
        self, argv: Sequence[str], source: BinaryIO, *, idle_timeout: float | None = None
    ) -> CommandResult:
        """Run argv with source copied to its stdin as it is read (constant memory)."""
        ...

    def close(self) -> None: ...
