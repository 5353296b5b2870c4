"""What `kato relocate NAME NEW_LOCATION` moves: each role's data dir NAME on each chosen node,
from where it lives now to NEW_LOCATION/<role>."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kato.config import Cluster, NodeConfig
from kato.datadirs import Locations
from kato.errors import UsageError
from kato.role_definitions import Definitions, role_of
from kato.roles import Role, in_start_order

PLAIN_PATH = re.compile(r"^(/[A-Za-z0-9._+-]+)+$")


@dataclass(frozen=True)
class Target:
    """One role's data dir on one node, and where it goes."""

    node: str
    role: Role
    name: str  # the data dir's name in role.yaml (services, droplets, containers, ...)
    declared: str  # its path in role.yaml (the units see it there, whatever the record says)
    current: str  # where it lives now
    dest: str  # where it goes: NEW_LOCATION/<role>

    @property
    def shown(self) -> str:
        return f"{self.node} {self.role.name} {self.name}"

    @property
    def done(self) -> bool:
        return self.current == self.dest


def data_dir_names(*defined: Mapping[str, Role]) -> list[str]:
    return sorted({name for roles in defined for role in roles.values() for name in role.data_dirs})


def check_name(name: str, *defined: Mapping[str, Role]) -> None:
    """`name` is a data dir some role of some of the `defined` sets declares."""
    names = data_dir_names(*defined)
    if name not in names:
        raise UsageError(
            f"{name!r} is not a data dir any role declares",
            hint=f"the data dirs are: {', '.join(names)}",
        )


def check_location(location: str) -> str:
    """NEW_LOCATION as given: an absolute, normalised path of plain characters."""
    parts = location.split("/")
    if not location.startswith("/"):
        raise UsageError(
            f"NEW_LOCATION {location!r} is not an absolute path",
            hint="give the full path, e.g. /mnt/ebs/droplets",
        )
    if not PLAIN_PATH.match(location) or "." in parts or ".." in parts:
        raise UsageError(
            f"NEW_LOCATION {location!r} must be a normalised path of letters, digits and . _ + -",
            hint="no spaces, no trailing /, no . or .. components (systemd units name it)",
        )
    return location


def roles_on(defined: Definitions, node: NodeConfig) -> tuple[Role, ...]:
    """The node's roles as its release defines them, in start order (a role its release does
    not define has no data dirs to move there)."""
    return in_start_order(r for r in (role_of(defined, node.name, n) for n in node.roles) if r)


def holders(cluster: Cluster, defined: Definitions, name: str, nodes: Sequence[str]) -> list[str]:
    """The chosen nodes whose release gives one of their roles data dir `name`."""
    chosen = [cluster.node(n) for n in nodes] if nodes else list(cluster.nodes)
    return [n.name for n in chosen if any(name in r.data_dirs for r in roles_on(defined, n))]


def targets(
    cluster: Cluster,
    defined: Definitions,
    name: str,
    location: str,
    where: Mapping[str, Locations],
    nodes: Sequence[str] = (),
) -> tuple[Target, ...]:
    """Every (node, role) holding data dir `name` on the chosen nodes, in start order, each
    node's roles as the release it runs defines them."""
    chosen = [cluster.node(n) for n in nodes] if nodes else list(cluster.nodes)
    found = []
    for node in chosen:
        for role in roles_on(defined, node):
            if name in role.data_dirs:
                declared = role.data_dirs[name]
                current = where[node.name].path(role.name, name, declared)
                dest = posixpath.join(location, role.name)
                found.append(Target(node.name, role, name, declared, current, dest))
    if not found:
        on = ", ".join(n.name for n in chosen)
        raise UsageError(
            f"no role with a {name} data dir runs on {on}",
            hint="see `kato relocate status` for where each data dir lives",
        )
    return tuple(found)


def is_within(path: str, other: str) -> bool:
    """path is other or below it."""
    return path == other or path.startswith(other.rstrip("/") + "/")
