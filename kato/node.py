"""`kato node`: list the cluster's nodes and record the host keys kato trusts."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kato.config import Cluster
from kato.connect import ssh_options
from kato.errors import HostKeyRefused
from kato.transport.ssh_connect import OfferedKey, offered_host_key
from kato.transport.ssh_route import route


@dataclass(frozen=True)
class TrustResult:
    node: str
    key_type: str
    fingerprint: str
    known_hosts: str
    changed: bool


def trust(
    cluster: Cluster, name: str, fingerprint: str | None, confirm: Callable[[OfferedKey], bool]
) -> TrustResult:
    """Record the key NODE offers in kato's known_hosts, but only when it matches the expected
    fingerprint or a person confirmed it."""
    node = cluster.node(name)
    options = ssh_options(cluster, node)
    offered = offered_host_key(
        node.name, node.address, node.port, cluster.ssh.connect_timeout, options
    )
    if fingerprint is not None and fingerprint != offered.fingerprint:
        raise HostKeyRefused(
            node.name,
            f"it offers a key that does not match {fingerprint}",
            offered.fingerprint,
            hint="do not trust it until you know why the key differs",
        )
    if fingerprint is None and not confirm(offered):
        raise HostKeyRefused(
            node.name,
            "the key was not confirmed",
            offered.fingerprint,
            hint=f"check it out of band, then `kato node trust --node {node.name} "
            f"--fingerprint {offered.fingerprint}`",
        )
    hostname = route(node.address, node.port, options)[-1].known_hosts_name  # ssh.config's
    changed = record(Path(cluster.ssh.known_hosts), hostname, offered)
    return TrustResult(
        node.name, offered.key_type, offered.fingerprint, cluster.ssh.known_hosts, changed
    )


def record(path: Path, hostname: str, key: OfferedKey) -> bool:
    """Replace hostname's lines in known_hosts with this key (atomically, mode 0600)."""
    return record_keys(path, {hostname: [(key.key_type, key.base64)]}) > 0


def record_keys(path: Path, keys: dict[str, list[tuple[str, str]]]) -> int:
    """Replace each hostname's lines in known_hosts with its (key type, base64) keys, in one
    atomic write (mode 0600); how many hostnames changed."""
    lines = path.read_text().splitlines() if path.exists() else []
    changed = 0
    for hostname, pairs in keys.items():
        wanted = [f"{hostname} {key_type} {key}" for key_type, key in pairs]
        kept = [line for line in lines if line.split(" ", 1)[0].split(",").count(hostname) == 0]
        if sorted(set(lines) - set(kept)) == sorted(wanted) and len(kept) + len(wanted) == len(
            lines
        ):
            continue
        lines, changed = kept + wanted, changed + 1
    if not changed:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".kato-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return changed
