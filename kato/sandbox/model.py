"""What a sandbox is: its nodes, addresses, disks and where its files live (sandbox.json)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kato.errors import UsageError

FORMAT = 1
DEFAULT_NAME = "sandbox"
NAME_PATTERN = re.compile(r"\A[a-z][a-z0-9]{0,10}\Z")
MAX_NODES = 60
CORE_ROLES = ("controller", "postgresql", "redis", "filesystem")
EDGE_ROLES = ("router", "dea")


def state_root() -> Path:
    return Path(os.environ.get("KATO_SANDBOX_HOME", "/var/lib/kato-sandbox"))


def validate_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise UsageError(
            f"sandbox name {name!r} is not valid",
            hint="use 1-11 lower-case letters and digits, starting with a letter",
        )
    return name


def roles_for(index: int, count: int) -> tuple[str, ...]:
    """The reference layout: node1 is the core and holds the data roles; the others route and
    run apps, so a cluster of 3 or more has two routers to roll during a graceful upgrade."""
    if count == 1:
        return CORE_ROLES + EDGE_ROLES
    if index == 1:
        return CORE_ROLES
    return EDGE_ROLES


@dataclass(frozen=True)
class Node:
    name: str
    index: int
    address: str
    mac: str
    roles: tuple[str, ...]

    def machine(self, sandbox: str) -> str:
        return f"{sandbox}-{self.name}"


@dataclass(frozen=True)
class Disk:
    node: str
    at: str
    fs: str
    size: str
    slug: str


@dataclass(frozen=True)
class Sandbox:
    """The sandbox as recorded before anything is created, so `down` can always undo it."""

    name: str
    subnet: str
    image: str
    nodes: tuple[Node, ...]
    disks: tuple[Disk, ...] = field(default=())
    format: int = FORMAT

    @property
    def home(self) -> Path:
        return state_root() / self.name

    @property
    def bridge(self) -> str:
        return f"kbr-{self.name}"[:15]

    @property
    def gateway(self) -> str:
        return str(ipaddress.ip_network(self.subnet).network_address + 1)

    @property
    def core(self) -> Node:
        return self.nodes[0]

    def netns(self, node: Node) -> str:
        return f"kato-{self.name}-{node.name}"

    def veth(self, node: Node) -> str:
        return f"v{self.name}-{node.index}"

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise UsageError(f"sandbox {self.name!r} has no node {name!r}", hint=f"nodes: {known}")

    def node_dir(self, node: Node) -> Path:
        return self.home / "nodes" / node.name

    def disks_of(self, node: Node) -> tuple[Disk, ...]:
        return tuple(d for d in self.disks if d.node == node.name)

    def disk_image(self, disk: Disk) -> Path:
        return self.home / "disks" / f"{disk.node}-{disk.slug}.img"

    def disk_mount(self, disk: Disk) -> Path:
        return self.home / "disks" / f"{disk.node}-{disk.slug}"


def plan_sandbox(name: str, count: int, subnet: str, image: str) -> Sandbox:
    """Decide every name and address of a new sandbox."""
    network = ipaddress.ip_network(subnet)
    if count < 1 or count > MAX_NODES:
        raise UsageError(f"--nodes must be between 1 and {MAX_NODES}, not {count}")
    octet = network.network_address.packed[2]
    nodes = tuple(
        Node(
            name=f"node{i}",
            index=i,
            address=str(network.network_address + 10 + i),
            mac=f"02:6b:61:74:{octet:02x}:{i:02x}",
            roles=roles_for(i, count),
        )
        for i in range(1, count + 1)
    )
    return Sandbox(name=name, subnet=str(network), image=image, nodes=nodes)


def state_file(name: str) -> Path:
    return state_root() / name / "sandbox.json"


def save(sandbox: Sandbox) -> None:
    path = state_file(sandbox.name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(sandbox), indent=2) + "\n")
    os.replace(tmp, path)


def load(name: str) -> Sandbox | None:
    path = state_file(validate_name(name))
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return Sandbox(
        name=raw["name"],
        subnet=raw["subnet"],
        image=raw["image"],
        nodes=tuple(
            Node(n["name"], n["index"], n["address"], n["mac"], tuple(n["roles"]))
            for n in raw["nodes"]
        ),
        disks=tuple(Disk(**d) for d in raw.get("disks", [])),
        format=raw.get("format", FORMAT),
    )


def require(name: str) -> Sandbox:
    sandbox = load(name)
    if sandbox is None:
        raise UsageError(
            f"there is no sandbox named {name!r}",
            hint=f"bring one up with: kato sandbox up --name {name}",
        )
    return sandbox
