"""The files a sandbox hands to kato and to people: cluster.yaml, known_hosts and ssh_config."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from kato.sandbox.model import Sandbox


def cluster_path(sandbox: Sandbox) -> Path:
    return sandbox.home / "cluster.yaml"


def known_hosts_path(sandbox: Sandbox) -> Path:
    return sandbox.home / "known_hosts"


def ssh_config_path(sandbox: Sandbox) -> Path:
    return sandbox.home / "ssh_config"


def identity_path(sandbox: Sandbox) -> Path:
    return sandbox.home / "id_ed25519"


def admin_public_key(sandbox: Sandbox) -> str:
    return Path(f"{identity_path(sandbox)}.pub").read_text()


def sudo_password_path(sandbox: Sandbox) -> Path:
    return sandbox.home / "sudo_password"


def ssh_document(sandbox: Sandbox) -> dict[str, object]:
    """The `ssh:` of the cluster file: root, or the sudo user with its password file; the
    OpenSSH config (ProxyJump) when nodes are reached through the bastion."""
    ssh: dict[str, object] = {
        "user": sandbox.user or "root",
        "identity_file": str(identity_path(sandbox)),
        "known_hosts": str(known_hosts_path(sandbox)),
        "connect_timeout": 5,
        "auth_timeout": 10,
        "command_timeout": 600,
        "parallel": 10,
    }
    if sandbox.user:
        ssh["sudo_password_file"] = str(sudo_password_path(sandbox))
    if sandbox.bastion:
        ssh["config"] = str(ssh_config_path(sandbox))
    return ssh


def cluster_document(sandbox: Sandbox) -> dict[str, object]:
    return {
        "name": sandbox.name,
        "core": sandbox.core.name,
        "ssh": ssh_document(sandbox),
        "releases": str(sandbox.home / "releases"),
        "patches": str(sandbox.home / "patches"),
        "nodes": [
            {"name": n.name, "address": n.address, "port": 22, "roles": list(n.roles)}
            for n in sandbox.cluster_nodes
        ],
    }


def known_hosts_text(sandbox: Sandbox, host_keys: dict[str, str]) -> str:
    """One line per node: its address and the public key read off its filesystem."""
    return "".join(f"{n.address} {host_keys[n.name]}\n" for n in sandbox.nodes)


def ssh_config_text(sandbox: Sandbox) -> str:
    """OpenSSH's view (for people and tests: root everywhere), through the bastion if any."""
    bastion = sandbox.bastion_node
    blocks = []
    for n in sandbox.nodes:
        blocks.append(
            f"Host {n.name} {n.address}\n"
            f"    HostName {n.address}\n"
            "    User root\n"
            f"    IdentityFile {identity_path(sandbox)}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {known_hosts_path(sandbox)}\n"
            "    StrictHostKeyChecking yes\n"
            "    ConnectTimeout 5\n"
            "    ServerAliveInterval 5\n"
            "    ServerAliveCountMax 3\n"
            + (f"    ProxyJump {bastion.name}\n" if bastion and n != bastion else "")
        )
    return "\n".join(blocks)


def write(sandbox: Sandbox, host_keys: dict[str, str]) -> None:
    header = (
        f"# written by `kato sandbox up --name {sandbox.name}`; `kato sandbox down` removes it\n"
    )
    _write(
        cluster_path(sandbox), header + yaml.safe_dump(cluster_document(sandbox), sort_keys=False)
    )
    _write(known_hosts_path(sandbox), known_hosts_text(sandbox, host_keys))
    _write(ssh_config_path(sandbox), header + ssh_config_text(sandbox))


def add_load_balancer(sandbox: Sandbox, section: dict[str, object]) -> None:
    """Name the load balancer's drain hooks in the cluster file (once it is set up)."""
    path = cluster_path(sandbox)
    lines = path.read_text().splitlines(keepends=True)
    header = "".join(line for line in lines if line.startswith("#"))
    document = yaml.safe_load(path.read_text())
    document["load_balancer"] = section
    _write(path, header + yaml.safe_dump(document, sort_keys=False))


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
