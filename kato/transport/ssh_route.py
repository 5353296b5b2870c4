"""The way to a node, the OpenSSH way: an opt-in client config (HostName, Port, User,
IdentityFile, ProxyJump) read with paramiko's SSHConfig. Beside ssh.py, the only module that
touches paramiko (lazily)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kato.errors import UsageError
from kato.transport.base import SshOptions

if TYPE_CHECKING:
    import paramiko

JUMP = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:\s]+)(?::(?P<port>\d+))?$")
MAX_JUMPS = 8


@dataclass(frozen=True)
class Hop:
    """One SSH server on the way: where it is and how to log in there."""

    name: str  # as written (an address, a config Host, a ProxyJump entry)
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]

    @property
    def known_hosts_name(self) -> str:
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def route(address: str, port: int, options: SshOptions) -> tuple[Hop, ...]:
    """Every hop to the node, jump hosts first, the node itself last. Without ssh_config the
    route is the node alone, exactly as the cluster file says."""
    own = (options.identity_file,) if options.identity_file else ()
    if not options.ssh_config:
        return (Hop(address, address, port, options.user, own),)
    entry = _lookup(options.ssh_config, address)
    given = options.given
    target = Hop(
        address,
        str(entry.get("hostname", address)),
        port if "port" in given or "port" not in entry else _port(entry["port"], address),
        options.user if "user" in given or "user" not in entry else str(entry["user"]),
        own if "identity_file" in given or not entry.get("identityfile") else _ids(entry),
    )
    jumps = str(entry.get("proxyjump", "none"))
    if jumps.lower() == "none":
        return (target,)
    hops = tuple(_jump(spec.strip(), options) for spec in jumps.split(","))
    if len(hops) > MAX_JUMPS:
        raise UsageError(f"{options.ssh_config}: ProxyJump of {address} has over {MAX_JUMPS} hops")
    return (*hops, target)


def _jump(spec: str, options: SshOptions) -> Hop:
    match = JUMP.match(spec)
    if not match:
        raise UsageError(
            f"{options.ssh_config}: ProxyJump {spec!r} is not [user@]host[:port]",
            hint="kato follows ProxyJump entries of that form (no ssh:// URIs)",
        )
    host = match["host"].strip("[]")
    entry = _lookup(str(options.ssh_config), host)
    own = (options.jump_identity_file,) if options.jump_identity_file else ()
    return Hop(
        spec,
        str(entry.get("hostname", host)),
        _port(match["port"] or entry.get("port", "22"), spec),
        match["user"] or str(entry.get("user") or options.jump_user or options.user),
        _ids(entry) if entry.get("identityfile") else own,
    )


def _port(text: Any, where: str) -> int:
    if not str(text).isdigit() or not 1 <= int(text) <= 65535:
        raise UsageError(f"the ssh config gives {where} the port {text!r}, not 1-65535")
    return int(text)


def _ids(entry: dict[str, Any]) -> tuple[str, ...]:
    return tuple(os.path.expanduser(p) for p in entry["identityfile"])


def _lookup(path: str, host: str) -> dict[str, Any]:
    resolved = Path(os.path.expanduser(path))
    try:
        mtime = resolved.stat().st_mtime_ns
    except OSError as exc:
        raise UsageError(
            f"cannot read the ssh config {resolved}: {exc.strerror}",
            hint="fix ssh.config in the cluster file, or remove it to use no OpenSSH config",
        ) from None
    try:
        return dict(_parsed(str(resolved), mtime).lookup(host))
    except ImportError:  # paramiko keeps invoke's absence for a `Match exec` line
        raise UsageError(
            f"{resolved}: a `Match exec` line was added while kato ran (it loaded paramiko "
            "without invoke, which runs those lines, when the file had none)",
            hint="run the command again: a new kato process reads the file from the start",
        ) from None


@lru_cache(maxsize=4)
def _parsed(path: str, mtime: int) -> paramiko.SSHConfig:
    import paramiko

    try:
        return paramiko.SSHConfig.from_path(path)
    except Exception as exc:  # paramiko raises several kinds for a bad line
        raise UsageError(f"{path}: not a valid ssh config: {exc}") from None


def keys_from_known_hosts(text: str, names: list[str]) -> dict[str, list[tuple[str, str]]]:
    """For each name (`host` or `[host]:port`), the (key type, base64) pairs an OpenSSH
    known_hosts text holds for it, hashed lines included; @revoked keys never count and
    @cert-authority lines are not host keys."""
    import paramiko

    found = paramiko.HostKeys()
    revoked: set[str] = set()
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] == "@revoked" and len(fields) >= 4:
            revoked.add(fields[3])
            continue
        if fields[0].startswith("@"):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except (paramiko.SSHException, ValueError, TypeError):
            continue  # a line paramiko cannot read is not a key kato may trust
        if entry is None or entry.key is None:
            continue
        for hostname in entry.hostnames:
            found.add(hostname, entry.key.get_name(), entry.key)
    result: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        keys = found.lookup(name)
        pairs = [] if keys is None else [(kind, keys[kind].get_base64()) for kind in keys]
        result[name] = [(kind, b64) for kind, b64 in pairs if b64 not in revoked]
    return result
