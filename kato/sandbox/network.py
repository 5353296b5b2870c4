"""The sandbox network: one bridge holding .1, one network namespace and veth pair per node.

The node's network namespace is made here, not by systemd-nspawn, so it outlives the node:
a crashed node's address still answers (with a refusal, as a dead host's kernel would not,
but as a dead container on a live host does), and a reboot keeps the same address. A static
neighbour entry for every node means a partition (veth down) drops packets silently, so
connecting times out as across a real partition instead of failing fast on ARP.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from kato.sandbox.model import Node, Sandbox
from kato.transport import local

NODE_IFACE = "eth0"


def link_exists(name: str) -> bool:
    return local.run(("ip", "link", "show", "dev", name), check=False).ok


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def create_bridge(sandbox: Sandbox) -> None:
    if link_exists(sandbox.bridge):
        return
    prefix = ipaddress.ip_network(sandbox.subnet).prefixlen
    local.run(("ip", "link", "add", sandbox.bridge, "type", "bridge"))
    local.run(("ip", "addr", "add", f"{sandbox.gateway}/{prefix}", "dev", sandbox.bridge))
    local.run(("ip", "link", "set", sandbox.bridge, "up"))


def create_node_network(sandbox: Sandbox, node: Node) -> None:
    ns, veth = sandbox.netns(node), sandbox.veth(node)
    prefix = ipaddress.ip_network(sandbox.subnet).prefixlen
    if not netns_exists(ns):
        local.run(("ip", "netns", "add", ns))
    if not link_exists(veth):
        local.run(
            ("ip", "link", "add", veth, "type", "veth", "peer", "name", NODE_IFACE, "netns", ns)
        )
    inside = ("ip", "-n", ns)
    local.run((*inside, "link", "set", NODE_IFACE, "address", node.mac))
    local.run((*inside, "addr", "replace", f"{node.address}/{prefix}", "dev", NODE_IFACE))
    local.run((*inside, "link", "set", NODE_IFACE, "up"))
    local.run((*inside, "link", "set", "lo", "up"))
    local.run((*inside, "route", "replace", "default", "via", sandbox.gateway))
    local.run(("ip", "link", "set", veth, "master", sandbox.bridge, "up"))
    local.run(
        (
            "ip",
            "neigh",
            "replace",
            node.address,
            "lladdr",
            node.mac,
            "dev",
            sandbox.bridge,
            "nud",
            "permanent",
        )
    )


def remove_node_network(sandbox: Sandbox, node: Node) -> None:
    if link_exists(sandbox.veth(node)):
        local.run(("ip", "link", "del", sandbox.veth(node)), check=False)
    if netns_exists(sandbox.netns(node)):
        local.run(("ip", "netns", "del", sandbox.netns(node)), check=False)


def remove_bridge(sandbox: Sandbox) -> None:
    if link_exists(sandbox.bridge):
        local.run(("ip", "link", "del", sandbox.bridge), check=False)


def is_link_up(name: str) -> bool:
    out = local.run(("ip", "-j", "link", "show", "dev", name), check=False).stdout
    links = json.loads(out) if out.strip() else []
    return bool(links) and "UP" in links[0].get("flags", [])


def set_link(name: str, up: bool) -> None:
    local.run(("ip", "link", "set", name, "up" if up else "down"))
