"""The cluster file: found, read and validated whole (every problem with its path).

Precedence: built-in defaults < the file < KATO_* environment variables < command-line flags.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kato import yamldoc
from kato.errors import UsageError
from kato.problems import MAX_SECONDS, Problems, is_address, is_seconds
from kato.ssh_settings import USER_NAME, SshSettings, parse_ssh

__all__ = ["Cluster", "DataLimits", "LoadBalancer", "NodeConfig", "SshSettings", "load", "parse"]

DEFAULT_PATH = Path("/etc/kato/cluster.yaml")
# \Z, not $: `$` also matches before a final newline, so "node1\n" would pass.
NODE_NAME = re.compile(r"\A[a-z0-9][a-z0-9-]{0,62}\Z")
ROLE_NAME = re.compile(r"\A[a-z][a-z0-9_-]{0,62}\Z")
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
NODE_KEYS = {"name", "address", "port", "roles"}
NODE_ACCESS_KEYS = {"user", "identity_file"}
NODE_KEYS |= NODE_ACCESS_KEYS


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
        raw, lines = yamldoc.load_marked(text)
    except yamldoc.YamlProblem as exc:
        raise UsageError(
            f"{path}: not valid YAML: {exc}", hint="fix it and check with `kato config validate`"
        ) from None
    return apply_env(parse(raw, str(path), lines), env)


def parse(raw: Any, path: str, lines: dict[str, int] | None = None) -> Cluster:
    """Validate a loaded document; raise one UsageError listing every problem (on the line of
    `lines`, yamldoc.load_marked's, where each is)."""
    problems = Problems(path, lines)
    if not isinstance(raw, dict):
        problems.add("", "must be a mapping with name, core, ssh and nodes")
        problems.raise_if_any()
    problems.unknown_keys(raw, TOP_KEYS, "")
    name = problems.string(raw, "name", "", pattern=NODE_NAME)
    ssh = parse_ssh(raw.get("ssh", {}), problems)
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
