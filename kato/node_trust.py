"""`kato node trust --all` and `--from-known-hosts`: host keys in bulk, never blindly. Keys are
recorded only when each matches a fingerprint given, after a typed confirmation, or when an
existing known_hosts the sysadmin names already holds them."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kato.config import Cluster, NodeConfig
from kato.connect import ssh_options
from kato.errors import ExitCode, HostKeyRefused, UsageError
from kato.node import record_keys
from kato.transport.fanout import NodeFailure, fan_out
from kato.transport.ssh_connect import offered_host_key
from kato.transport.ssh_route import keys_from_known_hosts, route

FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


@dataclass(frozen=True)
class NodeKey:
    node: str
    hostname: str  # its name in known_hosts: ADDRESS or [ADDRESS]:PORT (HostName with ssh.config)
    key_type: str
    base64: str
    fingerprint: str


@dataclass(frozen=True)
class BulkTrust:
    known_hosts: str
    keys: tuple[NodeKey, ...]  # recorded, or (dry run) to be recorded
    failed: tuple[NodeFailure, ...]
    dry_run: bool
    changed: int

    @property
    def exit_code(self) -> int:
        if not self.failed:
            return int(ExitCode.OK)
        return int(ExitCode.PARTIAL if self.keys else ExitCode.UNREACHABLE)


def fingerprints_in(text: str) -> set[str]:
    """Every SHA256:... fingerprint in a text (e.g. `ssh-keygen -lf` output, one per line)."""
    return set(FINGERPRINT.findall(text))


def fingerprint_of(key_base64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(cluster: Cluster, node: NodeConfig) -> str:
    """The node's name in known_hosts: its HostName (and port) once ssh.config is read."""
    return route(node.address, node.port, ssh_options(cluster, node))[-1].known_hosts_name


def trust_all(
    cluster: Cluster,
    nodes: Sequence[NodeConfig],
    expected: set[str],
    confirm: Callable[[tuple[NodeKey, ...]], bool],
    dry_run: bool = False,
) -> BulkTrust:
    """Fetch every node's key (in parallel) and record them all, but only when each matches
    one of `expected` or, with none expected, when `confirm` (a person) says yes."""

    def fetch(name: str) -> NodeKey:
        node = cluster.node(name)
        options = ssh_options(cluster, node)
        offered = offered_host_key(
            node.name, node.address, node.port, cluster.ssh.connect_timeout, options
        )
        return NodeKey(
            node.name,
            known_hosts_name(cluster, node),
            offered.key_type,
            offered.base64,
            offered.fingerprint,
        )

    fetched = fan_out([n.name for n in nodes], fetch, cluster.ssh.parallel)
    keys = tuple(fetched.succeeded[n.name] for n in nodes if n.name in fetched.succeeded)
    failed = tuple(fetched.failed[n.name] for n in nodes if n.name in fetched.failed)
    if expected:
        wrong = [k for k in keys if k.fingerprint not in expected]
        if wrong:
            raise HostKeyRefused(
                ", ".join(k.node for k in wrong),
                "the offered key matches none of the fingerprints given ("
                + ", ".join(f"{k.node} {k.fingerprint}" for k in wrong)
                + "); nothing was recorded",
                None,
                hint="do not trust them until you know why the keys differ",
            )
    elif keys and not dry_run and not confirm(keys):
        raise HostKeyRefused(
            ", ".join(k.node for k in keys),
            "the keys were not confirmed; nothing was recorded",
            None,
            hint="check the fingerprints out of band, then pass them with --fingerprint "
            "(repeatable) or --fingerprints FILE, or confirm on a terminal",
        )
    return _recorded(cluster, keys, failed, dry_run)


def from_known_hosts(
    cluster: Cluster, nodes: Sequence[NodeConfig], path: Path, dry_run: bool = False
) -> BulkTrust:
    """Record the keys an existing known_hosts (hashed lines too) holds for the nodes."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    names = _hosts_on_the_way(cluster, nodes)
    found = keys_from_known_hosts(text, sorted(set(names.values())))
    keys: list[NodeKey] = []
    failed: list[NodeFailure] = []
    for who, name in names.items():
        pairs = found[name]
        if not pairs:
            failed.append(
                NodeFailure(
                    who, "host key", f"{path} has no key for {name}", int(ExitCode.UNREACHABLE)
                )
            )
        for key_type, key in pairs:
            keys.append(NodeKey(who, name, key_type, key, fingerprint_of(key)))
    return _recorded(cluster, tuple(keys), tuple(failed), dry_run)


def _hosts_on_the_way(cluster: Cluster, nodes: Sequence[NodeConfig]) -> dict[str, str]:
    """Each node's known_hosts name, and before it each jump host's on the way (once):
    kato checks a jump host's key as it checks a node's."""
    names: dict[str, str] = {}
    for node in nodes:
        *jumps, last = route(node.address, node.port, ssh_options(cluster, node))
        for hop in jumps:
            names.setdefault(f"{hop.name} (jump host)", hop.known_hosts_name)
        names[node.name] = last.known_hosts_name
    return names


def _recorded(
    cluster: Cluster, keys: tuple[NodeKey, ...], failed: tuple[NodeFailure, ...], dry_run: bool
) -> BulkTrust:
    changed = 0
    if not dry_run:
        by_name: dict[str, list[tuple[str, str]]] = {}
        for key in keys:
            by_name.setdefault(key.hostname, []).append((key.key_type, key.base64))
        changed = record_keys(Path(cluster.ssh.known_hosts), by_name)
    return BulkTrust(cluster.ssh.known_hosts, keys, failed, dry_run, changed)
