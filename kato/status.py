"""`kato status` and `kato version`: every node in parallel, what runs and how healthy it is."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from kato import datadirs, facts, lock, role_definitions
from kato.config import Cluster, NodeConfig
from kato.connect import connections, select_nodes
from kato.errors import ExitCode, outcome_exit
from kato.role_definitions import roles_directory as roles_directory  # callers name it here
from kato.roles import Role, in_start_order
from kato.transport.base import Transport
from kato.transport.fanout import FanOut, NodeFailure, fan_out
from kato.transport.pool import Factory, ssh_factory


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
    definitions: str = ""  # where its role definitions come from (role_definitions.NodeRoles)

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
    # a record whose heartbeat expired: nobody holds the lock, the next command takes it over
    lock_expired: dict[str, object] | None = None

    @property
    def exit_code(self) -> int:
        """3 (5 when none answered) if nodes are unreachable, 1 if a role is unhealthy."""
        if self.unreachable:
            return int(outcome_exit(len(self.nodes), [f.exit_code for f in self.unreachable]))
        return int(ExitCode.OK if all(n.healthy for n in self.nodes) else ExitCode.FAILED)


def _role(found: facts.NodeFacts, role: Role) -> RoleStatus:
    units = found.units.get(role.name, {})
    problem = found.health.get(role.name)
    if any(state != "active" for state in units.values()):
        return RoleStatus(role.name, units, "failing: not running")
    return RoleStatus(role.name, units, "ok" if problem is None else f"failing: {problem}")


def node_status(
    transport: Transport, node: NodeConfig, roles: dict[str, Role], *, core: bool = False
) -> tuple[NodeStatus, dict[str, Any] | None]:
    """The node's status from ONE agent call; on the core node, the lock record too."""
    known = in_start_order(roles[r] for r in node.roles if r in roles)
    found = _facts(transport, known, core)
    return _built(node, roles, found), found.lock


def _facts(
    transport: Transport, known: tuple[Role, ...], core: bool, definitions: bool = False
) -> facts.NodeFacts:
    declared = [p for role in known for p in role.data_dirs.values()]
    return facts.node_facts(
        transport, known, space=declared, lock=core, datadirs=True, definitions=definitions
    )


def _built(node: NodeConfig, roles: dict[str, Role], found: facts.NodeFacts) -> NodeStatus:
    known = in_start_order(roles[r] for r in node.roles if r in roles)
    where = datadirs.from_document(node.name, found.datadirs) if found.datadirs else None
    wanted = [
        (role.name, name, path)
        for role in known
        for name, path in (where.of(role) if where else role.data_dirs).items()
    ]
    statuses = [_role(found, role) for role in known]
    statuses += [RoleStatus(r, {}, "unknown role") for r in node.roles if r not in roles]
    dirs = tuple(
        DataDir(
            role,
            name,
            path,
            bool(found.space.get(path, {}).get("exists")),
            int(found.space.get(path, {}).get("free", 0)),
        )
        for role, name, path in wanted
    )
    return NodeStatus(node.name, node.address, found.version, tuple(statuses), dirs)


def own_status(
    cluster: Cluster, transport: Transport, name: str
) -> tuple[NodeStatus, dict[str, Any] | None]:
    """The node's status by the role definitions of the release it runs (units, health checks
    and data dirs may differ between releases). One agent call asks with kato's bundled
    definitions and reads the node's; only a node whose release defines its roles otherwise
    is asked again with its own."""
    node, core = cluster.node(name), name == cluster.core
    guess = role_definitions.bundled()
    found = _facts(
        transport, in_start_order(guess[r] for r in node.roles if r in guess), core, True
    )
    own = role_definitions.resolve(cluster, name, found.version, found.definitions or {})
    roles = dict(own.roles)
    if any(roles.get(r) != guess.get(r) for r in node.roles):
        found = _facts(transport, in_start_order(roles[r] for r in node.roles if r in roles), core)
    return replace(_built(node, roles, found), definitions=own.source), found.lock


def status(
    cluster: Cluster,
    names: list[str] | None = None,
    role_filter: list[str] | None = None,
    factory: Factory = ssh_factory,
) -> ClusterStatus:
    """Every chosen node in parallel, one round trip each (the lock comes with the core's)."""
    chosen = [n.name for n in select_nodes(cluster, names, role_filter)]
    with connections(cluster, factory) as conns:

        def one(name: str) -> tuple[NodeStatus, dict[str, Any] | None]:
            return own_status(cluster, conns.get(name), name)

        everyone = chosen if cluster.core in chosen else [*chosen, cluster.core]  # for the lock
        found = fan_out(everyone, one, cluster.ssh.parallel)
    (held, expired), lock_error = _lock(cluster, found)
    return ClusterStatus(
        cluster.name,
        tuple(found.succeeded[n][0] for n in chosen if n in found.succeeded),
        tuple(found.failed[n] for n in chosen if n in found.failed),
        held,
        lock_error,
        expired,
    )


Shown = dict[str, object] | None


def _lock(
    cluster: Cluster, found: FanOut[tuple[NodeStatus, dict[str, Any] | None]]
) -> tuple[tuple[Shown, Shown], str | None]:
    """(the live lock's record, an expired record left on disk), each or None; or why the
    lock is unknown."""
    if cluster.core in found.failed:
        if found.failed[cluster.core].phase == "host key":
            return (None, None), "the core node's host key was refused"
        return (None, None), "the core node is unreachable"
    answer = found.succeeded[cluster.core][1] or {}
    record = answer.get("record")
    if not isinstance(record, dict):
        return (None, None), None
    alive = float(answer.get("now", 0)) - float(record.get("heartbeat", 0)) <= float(
        record.get("ttl", 0)
    )
    return ((lock.shown(record), None) if alive else (None, lock.shown(record))), None


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
