"""The cluster file's `ssh:` section: how kato logs in to the nodes (user, key, known_hosts,
timeouts, parallelism, OpenSSH's config, the agent, where a passphrase or sudo password is kept;
docs/ssh.md), parsed into SshSettings with every problem collected."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from kato.problems import Problems

USER_NAME = re.compile(r"\A[a-z_][a-z0-9_-]{0,31}\Z")
SSH_KEYS = {
    "user",
    "identity_file",
    "known_hosts",
    "connect_timeout",
    "auth_timeout",
    "command_timeout",
    "idle_timeout",
    "parallel",
    "port",
}
# How kato logs in (OpenSSH's config, the agent, passphrases, sudo): see docs/ssh.md.
SSH_ACCESS_KEYS = {
    "config",
    "agent",
    "passphrase_file",
    "passphrase_env",
    "keepalive",
    "sudo_password_file",
    "sudo_password_env",
}
SSH_KEYS |= SSH_ACCESS_KEYS
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


@dataclass(frozen=True)
class SshSettings:
    user: str = "root"
    identity_file: str | None = None
    known_hosts: str = "/etc/kato/known_hosts"
    port: int = 22
    connect_timeout: float = 5.0
    auth_timeout: float = 10.0
    command_timeout: float = 600.0
    idle_timeout: float = 20.0  # a node silent this long (no output, no keepalive answer)
    parallel: int = 10
    config: str | None = None  # an OpenSSH client config (HostName, Port, User, ProxyJump ...)
    agent: bool = False
    passphrase_file: str | None = None
    passphrase_env: str | None = None
    keepalive: float = 15.0
    sudo_password_file: str | None = None
    sudo_password_env: str | None = None
    given: frozenset[str] = frozenset()  # the settings spelled out (they beat ssh.config)


def parse_ssh(raw: Any, problems: Problems) -> SshSettings:
    """The `ssh:` mapping, with its login settings."""
    return _parse_ssh_access(_parse_ssh(raw, problems), raw, problems)


def _parse_ssh(raw: Any, problems: Problems) -> SshSettings:
    if not isinstance(raw, dict):
        problems.add("ssh", "must be a mapping")
        return SshSettings()
    problems.unknown_keys(raw, SSH_KEYS, "ssh")
    defaults = SshSettings()
    return SshSettings(
        user=problems.string(raw, "user", "ssh", required=False, pattern=USER_NAME)
        or defaults.user,
        identity_file=problems.string(raw, "identity_file", "ssh", required=False) or None,
        known_hosts=problems.string(raw, "known_hosts", "ssh", required=False)
        or defaults.known_hosts,
        port=problems.integer(raw, "port", "ssh", defaults.port, 1, 65535),
        connect_timeout=problems.number(raw, "connect_timeout", "ssh", defaults.connect_timeout),
        auth_timeout=problems.number(raw, "auth_timeout", "ssh", defaults.auth_timeout),
        command_timeout=problems.number(raw, "command_timeout", "ssh", defaults.command_timeout),
        idle_timeout=problems.number(raw, "idle_timeout", "ssh", defaults.idle_timeout),
        parallel=problems.integer(raw, "parallel", "ssh", defaults.parallel, 1, 256),
    )


def _parse_ssh_access(ssh: SshSettings, raw: Any, problems: Problems) -> SshSettings:
    """The login settings of `ssh:` (docs/ssh.md): which file or variable holds a secret,
    never the secret itself."""
    if not isinstance(raw, dict):
        return ssh
    agent = raw.get("agent", False)
    if not isinstance(agent, bool):
        problems.add("ssh.agent", "must be true or false")
        agent = False
    for key in ("passphrase_env", "sudo_password_env"):
        if isinstance(raw.get(key), str) and not ENV_NAME.match(raw[key]):
            problems.add(f"ssh.{key}", "must name an environment variable (letters, digits, _)")
    for secret in ("passphrase", "sudo_password"):
        if raw.get(f"{secret}_file") is not None and raw.get(f"{secret}_env") is not None:
            problems.add(f"ssh.{secret}_env", f"give {secret}_file or {secret}_env, not both")
    return replace(
        ssh,
        config=problems.string(raw, "config", "ssh", required=False) or None,
        agent=agent,
        passphrase_file=problems.string(raw, "passphrase_file", "ssh", required=False) or None,
        passphrase_env=problems.string(raw, "passphrase_env", "ssh", required=False) or None,
        keepalive=problems.number(raw, "keepalive", "ssh", ssh.keepalive, off=True),
        sudo_password_file=problems.string(raw, "sudo_password_file", "ssh", required=False)
        or None,
        sudo_password_env=problems.string(raw, "sudo_password_env", "ssh", required=False) or None,
        given=frozenset(k for k in ("user", "identity_file", "port") if k in raw),
    )
