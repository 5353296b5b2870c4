"""From a cluster file to connections: the SSH options and the node addresses it names."""

from __future__ import annotations

import os
from pathlib import Path

from kato import secrets, yamldoc
from kato.config import Cluster, NodeConfig
from kato.errors import UsageError
from kato.remote.layout import NODE_FILE
from kato.transport.base import SshOptions, Transport
from kato.transport.pool import Connections, Factory, ssh_factory


def ssh_options(cluster: Cluster, node: NodeConfig | None = None) -> SshOptions:
    """How to log in (to `node`, whose own user and identity_file beat the cluster's)."""
    ssh = cluster.ssh
    given = ssh.given | (node.given if node else frozenset())
    return SshOptions(
        user=(node.user if node else None) or ssh.user,
        identity_file=(node.identity_file if node else None) or ssh.identity_file,
        known_hosts=ssh.known_hosts,
        connect_timeout=ssh.connect_timeout,
        auth_timeout=ssh.auth_timeout,
        command_timeout=ssh.command_timeout,
        ssh_config=ssh.config,
        agent=ssh.agent,
        passphrase=secrets.read(ssh.passphrase_file, ssh.passphrase_env, "ssh.passphrase"),
        keepalive=ssh.keepalive,
        sudo_password=secrets.read(
            ssh.sudo_password_file, ssh.sudo_password_env, "ssh.sudo_password"
        ),
        given=given,
        jump_user=ssh.user,
        jump_identity_file=ssh.identity_file,
        idle_timeout=ssh.idle_timeout,
    )


def connections(cluster: Cluster, factory: Factory = ssh_factory) -> Connections:
    options = {n.name: ssh_options(cluster, n) for n in cluster.nodes}

    def per_node(node: str, address: str, port: int, _shared: SshOptions) -> Transport:
        return factory(node, address, port, options[node])

    return Connections(
        {n.name: (n.address, n.port) for n in cluster.nodes},
        ssh_options(cluster),
        per_node,
        cluster.ssh.parallel,
    )


def select_nodes(
    cluster: Cluster, names: list[str] | None = None, roles: list[str] | None = None
) -> tuple[NodeConfig, ...]:
    """The nodes chosen by --node and --role filters (every node when neither is given)."""
    chosen = cluster.nodes
    if names:
        wanted = [cluster.node(n) for n in names]  # unknown names are a usage error
        chosen = tuple(n for n in chosen if n in wanted)
    if roles:
        chosen = tuple(n for n in chosen if set(roles) & set(n.roles))
    return chosen


def this_node(cluster: Cluster) -> NodeConfig:
    """The node kato runs on (--only-this-node): the one this machine's node file names
    ($KATO_NODE_FILE overrides), else the one whose address is this machine's own."""
    import socket

    path = Path(os.environ.get("KATO_NODE_FILE", NODE_FILE))
    try:
        identity = yamldoc.load(path.read_text())
    except (OSError, yamldoc.YamlProblem):
        identity = None
    if isinstance(identity, dict) and identity.get("cluster") == cluster.name:
        return cluster.node(str(identity.get("name")))
    for node in cluster.nodes:
        family = socket.AF_INET6 if ":" in node.address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((node.address, 0))  # only an address of this machine can be bound
            except OSError:
                continue
            return node
    raise UsageError(
        f"this machine is not a node of cluster {cluster.name} ({path} does not say so, and "
        "no node's address is one of its own)",
        hint="run kato on a node of the cluster, or name the node with --node",
    )
