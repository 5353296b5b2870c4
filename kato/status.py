"""`kato status` and `kato version`: every node in parallel, what runs and how healthy it is."""

from __future__ import annotations

from dataclasses import dataclass, field

from kato import facts, lock, role_definitions
from kato.config import Cluster, NodeConfig
from kato.connect import connections, select_nodes
from kato.errors import ExitCode, KatoError
from kato.role_definitions import roles_directory as roles_directory  # callers name it here
from kato.roles import Role, in_start_order
from kato.transport.base import Transport
from kato.transport.fanout import FanOut, NodeFailure, failure, fan_out


@dataclass(frozen=True)
class RoleStatus:
    role: str
    units: dict[str, str]
    health: str  # "ok", "failing: why", or "unknown role"

    @property
    def ok(self) -> bool:
        return self.health == "ok"


@dataclass(frozen=True)
class DataDir:
    role: str
    name: str
    path: str
    exists: bool
    free_bytes: int


@dataclass(frozen=True)
class NodeStatus:
    name: str
    address: str
    version: str | None
    roles: tuple[RoleStatus, ...]
    data_dirs: tuple[DataDir, ...] = field(default=())

    @property
    def healthy(self) -> bool:
        return all(r.ok for r in self.roles)


@dataclass(frozen=True)
class ClusterStatus:
    cluster: str
    nodes: tuple[NodeStatus, ...]
    unreachable: tuple[NodeFailure, ...]
    lock: dict[str, object] | None
    lock_error: str | None = None

    @property
    def exit_code(self) -> int:
        """3 (5 when none answered) if nodes are unreachable, 1 if a role is unhealthy."""
        if self.unreachable:
            return int(ExitCode.PARTIAL if self.nodes else ExitCode.UNREACHABLE)
        return int(ExitCode.OK if all(n.healthy for n in self.nodes) else ExitCode.FAILED)


def role_status(transport: Transport, role: Role) -> RoleStatus:
    units = facts.unit_states(role.units).gather(transport)
    if any(state != "active" for state in units.values()):
        return RoleStatus(role.name, units, "failing: not running")
    problem = facts.health_check(role.health, timeout=5).gather(transport)
    return RoleStatus(role.name, units, "ok" if problem is None else f"failing: {problem}")


def node_status(transport: Transport, node: NodeConfig, roles: dict[str, Role]) -> NodeStatus:
    known = in_start_order(roles[r] for r in node.roles if r in roles)
    statuses = [role_status(transport, role) for role in known]
    statuses += [RoleStatus(r, {}, "unknown role") for r in node.roles if r not in roles]
    wanted = [(role.name, name, path) for role in known for name, path in role.data_dirs.items()]
    space = facts.free_space([p for _, _, p in wanted]).gather(transport) if wanted else {}
    dirs = tuple(
        DataDir(
            role,
            name,
            path,
            bool(space.get(path, {}).get("exists")),
            int(space.get(path, {}).get("free", 0)),
        )
        for role, name, path in wanted
    )
    return NodeStatus(
        node.name, node.address, facts.platform_version.gather(transport), tuple(statuses), dirs
    )


def status(
    cluster: Cluster, names: list[str] | None = None, role_filter: list[str] | None = None
) -> ClusterStatus:
    chosen = select_nodes(cluster, names, role_filter)
    with connections(cluster) as conns:

        def one(name: str) -> NodeStatus:
            transport = conns.get(name)
            version = facts.platform_version.gather(transport)
            roles = role_definitions.for_version(cluster, version)
            return node_status(transport, cluster.node(name), roles)

        found: FanOut[NodeStatus] = fan_out([n.name for n in chosen], one, cluster.ssh.parallel)
        held, lock_error = None, None
        if cluster.core not in found.failed:
            try:
                state = lock.status(conns.get(cluster.core))
                held = state.record if state.alive else None
            except KatoError as exc:
                lock_error = failure(cluster.core, exc).message
        else:
            lock_error = "the core node is unreachable"
    order = [n.name for n in chosen]
    return ClusterStatus(
        cluster.name,
        tuple(found.succeeded[n] for n in order if n in found.succeeded),
        tuple(found.failed[n] for n in order if n in found.failed),
        held,
        lock_error,
    )


@dataclass(frozen=True)
class Versions:
    nodes: dict[str, str | None]
    unreachable: tuple[NodeFailure, ...]


def versions(cluster: Cluster) -> Versions:
    """Each node's platform version: one command per node, nothing else gathered."""
    with connections(cluster) as conns:
        found: FanOut[str | None] = fan_out(
            [n.name for n in cluster.nodes],
            lambda name: facts.platform_version.gather(conns.get(name)),
            cluster.ssh.parallel,
        )
    order = [n.name for n in cluster.nodes]
    return Versions(
        {n: found.succeeded[n] for n in order if n in found.succeeded},
        tuple(found.failed[n] for n in order if n in found.failed),
    )
