"""`kato relocate status`: where every data dir lives on every node, on which filesystem, its
size, the free space there, the quota state, the old copies kept and any move under way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kato import role_definitions
from kato.config import Cluster
from kato.connect import connections, select_nodes
from kato.datadirs import locations
from kato.errors import ExitCode
from kato.relocate.facts import probe, quota
from kato.relocate.preflight import QUOTA_DIRS
from kato.roles import Role, in_start_order
from kato.transport.base import Transport
from kato.transport.fanout import FanOut, NodeFailure, fan_out


@dataclass(frozen=True)
class DirLocation:
    node: str
    role: str
    name: str
    path: str
    declared: str
    fstype: str
    mount: str
    used: int
    free: int
    quota: str  # on, off, unsupported: why, or "-" for data dirs without quotas
    old_copies: tuple[str, ...]
    moving: str | None  # "DEST (PHASE)" while a relocation is under way or was interrupted

    @property
    def moved(self) -> bool:
        return self.path != self.declared


@dataclass(frozen=True)
class RelocateStatus:
    dirs: tuple[DirLocation, ...]
    unreachable: tuple[NodeFailure, ...]

    @property
    def exit_code(self) -> int:
        if self.unreachable:
            return int(ExitCode.PARTIAL if self.dirs else ExitCode.UNREACHABLE)
        return int(ExitCode.OK)


def node_dirs(
    transport: Transport, node_roles: tuple[str, ...], roles: Mapping[str, Role]
) -> list[DirLocation]:
    """The node's data dirs as `roles` (its release's definitions) declare them."""
    known = in_start_order(roles[r] for r in node_roles if r in roles)
    where = locations(transport)
    pairs = [(role, name, path) for role in known for name, path in where.of(role).items()]
    if not pairs:
        return []
    found = probe(transport, [path for _, _, path in pairs])
    quotas: dict[str, str] = {}
    out = []
    for role, name, path in pairs:
        info = found[path]
        state = "-"
        if name in QUOTA_DIRS:
            if info.mount not in quotas:
                q = quota(transport, info)
                quotas[info.mount] = q.state if q.supported else f"unsupported: {q.why}"
            state = quotas[info.mount]
        moving = where.moving.get(role.name, {}).get(name)
        out.append(
            DirLocation(
                transport.node,
                role.name,
                name,
                path,
                role.data_dirs[name],
                info.fstype,
                info.mount,
                info.used,
                info.free,
                state,
                where.previous.get(role.name, {}).get(name, ()),
                f"{moving[0]} ({moving[1]})" if moving else None,
            )  # fmt: skip
        )
    return out


def _on_node(cluster: Cluster, transport: Transport) -> list[DirLocation]:
    """One node: the definitions of the release it runs (a node that cannot say is reported
    as not answering, like any other failure here), then its data dirs."""
    mine = role_definitions.of_node(cluster, transport, transport.node)
    return node_dirs(transport, cluster.node(transport.node).roles, mine.roles)


def status(cluster: Cluster, names: list[str] | None = None) -> RelocateStatus:
    chosen = select_nodes(cluster, names, None)
    with connections(cluster) as conns:
        found: FanOut[list[DirLocation]] = fan_out(
            [n.name for n in chosen],
            lambda n: _on_node(cluster, conns.get(n)),
            cluster.ssh.parallel,
        )
    order = [n.name for n in chosen]
    return RelocateStatus(
        tuple(d for n in order for d in found.succeeded.get(n, [])),
        tuple(found.failed[n] for n in order if n in found.failed),
    )
