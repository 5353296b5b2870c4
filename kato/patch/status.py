"""`kato patch status`: the patches for the cluster's platform version and where each is applied."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from kato import role_definitions
from kato.config import Cluster, NodeConfig
from kato.connect import connections, select_nodes
from kato.errors import UsageError
from kato.patch import nodes as node_patches
from kato.patch.nodes import NodePatches
from kato.patch.repository import Patch, PatchIndex, load_index
from kato.role_definitions import ClusterRoles, NodeRoles
from kato.transport.fanout import FanOut, NodeFailure, fan_out
from kato.transport.pool import Connections


@dataclass(frozen=True)
class PatchState:
    name: str
    description: str
    severity: str
    roles: tuple[str, ...]
    applies_to: tuple[str, ...]
    installed: tuple[str, ...]
    missing: tuple[str, ...]
    restart_pending: tuple[str, ...] = ()
    interrupted: tuple[str, ...] = ()

    @property
    def is_available(self) -> bool:
        return bool(self.missing or self.interrupted)


@dataclass(frozen=True)
class Flagged:
    node: str
    version: str | None


@dataclass(frozen=True)
class PatchReport:
    cluster: str
    platform: str
    version: str | None
    available: int
    patches: tuple[PatchState, ...]
    flagged: tuple[Flagged, ...] = ()
    unreachable: tuple[NodeFailure, ...] = field(default=())


def repository(cluster: Cluster, repo: str | None) -> str:
    location = repo or cluster.patches
    if not location:
        raise UsageError(
            "the cluster file names no patch repository",
            hint="add `patches: PATH-OR-URL` to it, or pass --repo",
        )
    return location


def cluster_version(cluster: Cluster, states: dict[str, NodePatches]) -> str | None:
    """The core node's platform version, else the one most nodes run."""
    core = states.get(cluster.core)
    if core is not None and core.version:
        return core.version
    counted = Counter(s.version for s in states.values() if s.version)
    return counted.most_common(1)[0][0] if counted else None


def carriers(patch: Patch, nodes: tuple[NodeConfig, ...]) -> list[NodeConfig]:
    return [n for n in nodes if set(patch.roles) & set(n.roles)]


def summarize(cluster: Cluster, index: PatchIndex, states: FanOut[NodePatches]) -> PatchReport:
    """Pure: the report from the index and each node's state."""
    got = states.succeeded
    version = cluster_version(cluster, got)
    flagged = tuple(Flagged(n, s.version) for n, s in got.items() if s.version != version)
    on_version = {n for n, s in got.items() if s.version == version}
    rows = []
    for patch in index.patches:
        if version not in patch.applies_to:
            continue
        nodes = [n.name for n in carriers(patch, cluster.nodes) if n.name in on_version]
        applied = {n for n in nodes if patch.name in got[n].applied}
        rows.append(
            PatchState(
                patch.name,
                patch.description,
                patch.severity,
                patch.roles,
                patch.applies_to,
                installed=tuple(n for n in nodes if n in applied),
                missing=tuple(n for n in nodes if n not in applied),
                restart_pending=tuple(
                    n for n in nodes if n in applied and got[n].applied[patch.name].restart_pending
                ),
                interrupted=tuple(n for n in nodes if patch.name in got[n].interrupted),
            )
        )
    available = sum(1 for row in rows if row.is_available)
    return PatchReport(
        cluster.name,
        index.platform,
        version,
        available,
        tuple(rows),
        flagged,
        tuple(states.failed.values()),
    )


def asked_of_nodes(
    cluster: Cluster, conns: Connections, chosen: tuple[NodeConfig, ...]
) -> tuple[ClusterRoles, FanOut[NodePatches]]:
    """Each chosen node's role definitions (those of the release it runs) and its patch state,
    in ONE agent call: the state is asked with the units kato's bundled definitions give the
    node's roles, and asked again (a second call) only when the node's release names other
    units for them. A node that cannot be asked is a failure of that node."""

    def one(name: str) -> tuple[NodeRoles, NodePatches]:
        node = cluster.node(name)
        guess = node_patches.units_of(node, role_definitions.bundled())
        found = role_definitions.of_node(cluster, conns.get(name), name, patches=guess)
        answer = found.answer.patches if found.answer is not None else None
        if answer is not None and node_patches.units_of(node, found.roles) == guess:
            return found, node_patches.state_of(name, answer)
        return found, node_patches.gather(conns.get(name), node, dict(found.roles))

    done = fan_out([n.name for n in chosen], one, cluster.ssh.parallel)
    roles = ClusterRoles({n: found for n, (found, _) in done.succeeded.items()})
    states = {n: state for n, (_, state) in done.succeeded.items()}
    return roles, FanOut(states, dict(done.failed))


def status(cluster: Cluster, repo: str | None = None) -> PatchReport:
    index = load_index(repository(cluster, repo))
    with connections(cluster) as conns:
        _, states = asked_of_nodes(cluster, conns, select_nodes(cluster))
    return summarize(cluster, index, states)


def render(report: PatchReport) -> list[str]:
    """The report as text, in the spirit of Stackato's `kato patch status`."""
    count = report.available
    lines = [f"{count} update{'' if count == 1 else 's'} available to be installed.", ""]
    lines.append(f"Known updates for {report.platform} {report.version or '(no platform)'}:")
    for row in report.patches:
        lines += [
            "",
            f"  {row.name}: {row.description}",
            f"    severity: {row.severity}",
            f"    roles affected: {', '.join(row.roles)}",
            f"    installed on: {', '.join(row.installed) or 'none'}",
            f"    missing on: {', '.join(row.missing) or 'none'}",
        ]
        if row.restart_pending:
            lines.append(f"    restart pending on: {', '.join(row.restart_pending)}")
        if row.interrupted:
            lines.append(
                f"    interrupted on: {', '.join(row.interrupted)} "
                f"(run `kato patch install {row.name}` or `kato patch revert {row.name}`)"
            )
    if not report.patches:
        lines += ["", "  none"]
    if report.flagged or report.unreachable:
        lines.append("")
    for flag in report.flagged:
        lines.append(
            f"{flag.node}: runs platform {flag.version or '(none)'}, not {report.version}: "
            "flagged, not patched"
        )
    for failed in report.unreachable:
        lines.append(f"{failed.node}: not known ({failed.phase}: {failed.message})")
    return lines
