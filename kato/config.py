"""The cluster file: found, read and validated whole (every problem with its path).

Precedence: built-in defaults < the file < KATO_* environment variables < command-line flags.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kato import yamldoc
from kato.errors import UsageError

DEFAULT_PATH = Path("/etc/kato/cluster.yaml")
NODE_FILE = "/etc/kato/node.yaml"  # on each node: its name and cluster (kato install writes it)
# \Z, not $: `$` also matches before a final newline, so "node1\n" would pass.
NODE_NAME = re.compile(r"\A[a-z0-9][a-z0-9-]{0,62}\Z")
ROLE_NAME = re.compile(r"\A[a-z][a-z0-9_-]{0,62}\Z")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"\A(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?\Z")  # RFC 1123
USER_NAME = re.compile(r"\A[a-z_][a-z0-9_-]{0,31}\Z")
MAX_SECONDS = 7 * 86400.0  # a timeout longer than a week is a typo (and overflows select)
TOP_KEYS = {
    "name",
    "core",
    "ssh",
    "nodes",
    "releases",
    "patches",
    "data",
    "load_balancer",
    "offsite",
}
LB_KEYS = {"node", "drain", "undrain", "timeout"}
DATA_KEYS = {"max_entries", "max_ratio"}
OFFSITE_KEYS = {"rclone_config"}
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
NODE_KEYS = {"name", "address", "port", "roles"}
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
NODE_ACCESS_KEYS = {"user", "identity_file"}
NODE_KEYS |= NODE_ACCESS_KEYS
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


@dataclass(frozen=True)
class DataLimits:
    """What an archive may ask of the nodes before an operator raises it (docs/data.md):
    files, dirs and links in its trees, and its declared bytes per byte of archive."""

    max_entries: int = 500_000
    max_ratio: float = 100.0


@dataclass(frozen=True)
class NodeConfig:
    name: str
    address: str
    port: int
    roles: tuple[str, ...]
    user: str | None = None  # this node's own login, beating ssh.user and ssh.config
    identity_file: str | None = None
    given: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LoadBalancer:
    """The load balancer in front of the routers, as kato drives it during a graceful upgrade:
    `drain` and `undrain` run on `node` (over kato's SSH), `{router}` and `{address}` replaced
    by the router's name and address. `drain` returns once the router gets no more traffic,
    `undrain` once it gets traffic again; each within `timeout` seconds."""

    node: str
    drain: tuple[str, ...]
    undrain: tuple[str, ...]
    timeout: float = 60.0


@dataclass(frozen=True)
class Cluster:
    name: str
    core: str
    nodes: tuple[NodeConfig, ...]
    ssh: SshSettings = field(default_factory=SshSettings)
    releases: str | None = None
    patches: str | None = None
    path: str = ""
    data: DataLimits = field(default_factory=DataLimits)
    load_balancer: LoadBalancer | None = None
    rclone_config: str | None = None  # offsite.rclone_config: where the remotes are defined

    def node(self, name: str) -> NodeConfig:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise UsageError(f"cluster {self.name!r} has no node {name!r}", hint=f"nodes: {known}")

    @property
    def core_node(self) -> NodeConfig:
        return self.node(self.core)

    def with_role(self, role: str) -> tuple[NodeConfig, ...]:
        return tuple(n for n in self.nodes if role in n.roles)


def find_path(flag: str | None, env: Mapping[str, str] = os.environ) -> Path:
    if flag:
        return Path(flag)
    if env.get("KATO_CLUSTER"):
        return Path(env["KATO_CLUSTER"])
    return DEFAULT_PATH


def load(flag: str | None = None, env: Mapping[str, str] = os.environ) -> Cluster:
    path = find_path(flag, env)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(
            f"no cluster file at {path}",
            hint="pass --cluster PATH or set KATO_CLUSTER (see conf/cluster.yaml)",
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read the cluster file {path}: {exc.strerror}") from None
    try:
        raw = yamldoc.load(text)
    except yamldoc.YamlProblem as exc:
        raise UsageError(
            f"{path}: not valid YAML: {exc}", hint="fix it and check with `kato config validate`"
        ) from None
    return apply_env(parse(raw, str(path)), env)


def parse(raw: Any, path: str) -> Cluster:
    """Validate a loaded document; raise one UsageError listing every problem."""
    problems = Problems(path)
    if not isinstance(raw, dict):
        problems.add("", "must be a mapping with name, core, ssh and nodes")
        problems.raise_if_any()
    problems.unknown_keys(raw, TOP_KEYS, "")
    name = problems.string(raw, "name", "", pattern=NODE_NAME)
    ssh = _parse_ssh_access(_parse_ssh(raw.get("ssh", {}), problems), raw.get("ssh"), problems)
    nodes = _parse_node_access(_parse_nodes(raw.get("nodes"), ssh.port, problems), raw, problems)
    core = problems.string(raw, "core", "")
    if core and nodes and core not in {n.name for n in nodes}:
        problems.add("core", f"names {core!r}, which is not one of the nodes")
    releases = problems.string(raw, "releases", "", required=False)
    patches = problems.string(raw, "patches", "", required=False)
    data = _parse_data(raw.get("data", {}), problems)
    balancer = _parse_load_balancer(raw.get("load_balancer"), {n.name for n in nodes}, problems)
    rclone_config = _parse_offsite(raw.get("offsite", {}), problems)
    problems.raise_if_any()
    return Cluster(
        name=name,
        core=core,
        nodes=nodes,
        ssh=ssh,
        releases=releases or None,
        patches=patches or None,
        path=path,
        data=data,
        load_balancer=balancer,
        rclone_config=rclone_config,
    )


def _parse_data(raw: Any, problems: Problems) -> DataLimits:
    if not isinstance(raw, dict):
        problems.add("data", "must be a mapping (max_entries, max_ratio)")
        return DataLimits()
    problems.unknown_keys(raw, DATA_KEYS, "data")
    defaults = DataLimits()
    ratio = raw.get("max_ratio", defaults.max_ratio)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 1 <= ratio < math.inf:
        problems.add("data.max_ratio", "must be a finite number of at least 1")
        ratio = defaults.max_ratio
    return DataLimits(
        max_entries=problems.integer(raw, "max_entries", "data", defaults.max_entries, 1, 10**9),
        max_ratio=float(ratio),
    )


def _parse_load_balancer(raw: Any, nodes: set[str], problems: Problems) -> LoadBalancer | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add("load_balancer", "must be a mapping of node, drain, undrain and timeout")
        return None
    problems.unknown_keys(raw, LB_KEYS, "load_balancer")
    node = problems.string(raw, "node", "load_balancer")
    if node and node not in nodes:
        problems.add("load_balancer.node", f"names {node!r}, which is not one of the nodes")
    hooks = []
    for key in ("drain", "undrain"):
        argv = raw.get(key)
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            problems.add(f"load_balancer.{key}", "required: a command as a list of strings")
            argv = []
        hooks.append(tuple(argv))
    timeout = problems.number(raw, "timeout", "load_balancer", 60.0)
    return LoadBalancer(node, hooks[0], hooks[1], timeout)


def _parse_offsite(raw: Any, problems: Problems) -> str | None:
    if not isinstance(raw, dict):
        problems.add("offsite", "must be a mapping, e.g. {rclone_config: /etc/kato/rclone.conf}")
        return None
    problems.unknown_keys(raw, OFFSITE_KEYS, "offsite")
    config = problems.string(raw, "rclone_config", "offsite", required=False)
    if config and not config.startswith("/"):
        problems.add("offsite.rclone_config", f"{config!r} must be an absolute path")
    return config or None


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


def _parse_nodes(raw: Any, default_port: int, problems: Problems) -> tuple[NodeConfig, ...]:
    if not isinstance(raw, list) or not raw:
        problems.add("nodes", "required: a list of nodes (name, address, roles)")
        return ()
    nodes, seen = [], set()
    for i, entry in enumerate(raw):
        where = f"nodes[{i}]"
        if not isinstance(entry, dict):
            problems.add(where, "must be a mapping with name, address and roles")
            continue
        problems.unknown_keys(entry, NODE_KEYS, where)
        name = problems.string(entry, "name", where, pattern=NODE_NAME)
        if name in seen:
            problems.add(f"{where}.name", f"{name!r} is used by another node")
        seen.add(name)
        address = problems.string(entry, "address", where)
        if address and not is_address(address):
            problems.add(f"{where}.address", f"{address!r} is not an IP address or host name")
        roles = entry.get("roles", [])
        if not isinstance(roles, list) or not all(
            isinstance(r, str) and ROLE_NAME.match(r) for r in roles
        ):
            problems.add(f"{where}.roles", "must be a list of role names (a-z, 0-9, - and _)")
            roles = []
        port = problems.integer(entry, "port", where, default_port, 1, 65535)
        nodes.append(NodeConfig(name, address, port, tuple(roles)))
    return tuple(nodes)


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


def _parse_node_access(
    nodes: tuple[NodeConfig, ...], raw: Any, problems: Problems
) -> tuple[NodeConfig, ...]:
    """Each node's own `user` and `identity_file`, which beat ssh.* and ssh.config."""
    entries = raw.get("nodes") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or len(entries) != len(nodes):
        return nodes
    found = []
    for i, (node, entry) in enumerate(zip(nodes, entries, strict=True)):
        where = f"nodes[{i}]"
        user = problems.string(entry, "user", where, required=False, pattern=USER_NAME)
        identity = problems.string(entry, "identity_file", where, required=False)
        given = frozenset(k for k in ("user", "identity_file", "port") if k in entry)
        found.append(replace(node, user=user or None, identity_file=identity or None, given=given))
    return tuple(found)


def is_address(text: str) -> bool:
    """An IPv4 or IPv6 address, or an RFC 1123 host name (whose last label is not all digits:
    999.1.1.1 is a bad address, not a name)."""
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    if not HOSTNAME.match(text):
        return False
    return not text.rstrip(".").rsplit(".", 1)[-1].isdigit()


def is_seconds(value: object) -> bool:
    """A finite number of seconds above 0 and at most MAX_SECONDS (not .nan, not .inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0 < value <= MAX_SECONDS


class Problems:
    """Collects validation problems as `path: key: what is wrong`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{self.path}: {where + ': ' if where else ''}{what}")

    def raise_if_any(self) -> None:
        if self.items:
            raise UsageError(
                f"the cluster file has {len(self.items)} problem(s):\n  " + "\n  ".join(self.items),
                hint="fix them and check with `kato config validate`",
            )

    def unknown_keys(self, raw: dict[str, Any], allowed: set[str], where: str) -> None:
        for key in sorted(set(raw) - allowed, key=str):
            self.add(f"{where}.{key}" if where else str(key), "unknown key")

    def string(
        self,
        raw: dict[str, Any],
        key: str,
        where: str,
        required: bool = True,
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        at = f"{where}.{key}" if where else key
        value = raw.get(key)
        if value is None:
            if required:
                self.add(at, "required")
            return ""
        if not isinstance(value, str) or not value:
            self.add(at, "must be a non-empty string")
            return ""
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
            self.add(at, f"{value!r} contains a control character (a newline, a tab, ...)")
            return ""
        if pattern and not pattern.match(value):
            self.add(
                at,
                f"{value!r} is not allowed (letters, digits and -; no spaces or shell characters)",
            )
            return ""
        return value

    def integer(
        self, raw: dict[str, Any], key: str, where: str, default: int, low: int, high: int
    ) -> int:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.add(f"{where}.{key}", f"must be a whole number from {low} to {high}")
            return default
        return value

    def number(
        self, raw: dict[str, Any], key: str, where: str, default: float, off: bool = False
    ) -> float:
        """Seconds above 0; with `off`, 0 too (the thing switched off)."""
        value = raw.get(key, default)
        if off and value == 0 and not isinstance(value, bool):
            return 0.0
        if not is_seconds(value):
            self.add(
                f"{where}.{key}", f"must be a number of seconds above 0 and at most {MAX_SECONDS:g}"
            )
            return default
        return float(value)


ENV_OVERRIDES = {
    "KATO_SSH_USER": ("user", str),
    "KATO_SSH_IDENTITY": ("identity_file", str),
    "KATO_KNOWN_HOSTS": ("known_hosts", str),
    "KATO_CONNECT_TIMEOUT": ("connect_timeout", float),
    "KATO_COMMAND_TIMEOUT": ("command_timeout", float),
    "KATO_IDLE_TIMEOUT": ("idle_timeout", float),
    "KATO_PARALLEL": ("parallel", int),
}


def apply_env(cluster: Cluster, env: Mapping[str, str]) -> Cluster:
    changes: dict[str, Any] = {}
    for variable, (key, kind) in ENV_OVERRIDES.items():
        if variable in env:
            try:
                changes[key] = kind(env[variable])
            except ValueError:
                raise UsageError(f"{variable}={env[variable]!r} is not a valid {key}") from None
    if not changes:
        return cluster
    changes["given"] = cluster.ssh.given | {k for k in changes if k in ("user", "identity_file")}
    ssh = replace(cluster.ssh, **changes)
    if not 1 <= ssh.parallel <= 256:
        raise UsageError(f"KATO_PARALLEL must be from 1 to 256, not {ssh.parallel}")
    if not all(is_seconds(s) for s in (ssh.connect_timeout, ssh.command_timeout, ssh.idle_timeout)):
        raise UsageError(
            "KATO_CONNECT_TIMEOUT, KATO_COMMAND_TIMEOUT and KATO_IDLE_TIMEOUT must be seconds "
            f"above 0 and at most {MAX_SECONDS:g}"
        )
    if not USER_NAME.match(ssh.user):
        raise UsageError(f"KATO_SSH_USER={ssh.user!r} is not a valid user name")
    return replace(cluster, ssh=ssh)


def with_parallel(cluster: Cluster, parallel: int | None) -> Cluster:
    """The --parallel flag, which beats the file and the environment."""
    if parallel is None:
        return cluster
    if not 1 <= parallel <= 256:
        raise UsageError(f"--parallel must be from 1 to 256, not {parallel}")
    return replace(cluster, ssh=replace(cluster.ssh, parallel=parallel))
