"""What a data command learns of the nodes before it acts, in ONE node agent call per node.

Over the command's own connections (no second handshake), each node that carries a chosen role
by the cluster file, and the core node, is asked once for the role definitions of the release it
runs, where its data dirs live (kato relocate's record), its platform version and, for an
export, its data dirs' mode, owner and size, or for an import the free space beside them. The
paths to ask about are foreseen from kato's bundled definitions; a release that declares a data
dir elsewhere costs its node a second call for just those (dir_facts, free_beside), so the
answer is always the node's own.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kato import datadirs, role_definitions
from kato.config import Cluster
from kato.data.each_node import each_node
from kato.data.selection import DataDir
from kato.errors import PreflightRefused
from kato.facts import node_facts
from kato.role_definitions import ClusterRoles
from kato.transport.pool import Connections

DU_TIMEOUT = 600.0  # measuring a data dir walks all of it


@dataclass(frozen=True)
class DirFacts:
    """A data dir's mode and numeric owner (for the manifest) and size (for the estimate)."""

    mode: str
    owner: str
    size: int


@dataclass(frozen=True)
class Survey:
    """The asked nodes' answers: their definitions (each with the whole agent answer)."""

    defined: ClusterRoles
    version: str | None  # the platform release the core node runs (None: not asked)

    def located(self, sources: Sequence[DataDir]) -> tuple[DataDir, ...]:
        """The same data dirs, each with the path it has on its node now (kato relocate)."""
        return tuple(
            replace(s, path=self._where(s.node).path(s.role, s.data_dir, s.path)) for s in sources
        )

    def _where(self, node: str) -> datadirs.Locations:
        entry = self.defined.nodes[node]
        record = entry.answer.datadirs if entry.answer else None
        return datadirs.from_document(node, record if record is not None else {"data_dirs": {}})

    def dirs(self, node: str) -> dict[str, Any]:
        """The node's answer on its data dirs: path -> mode, owner, size, dir (None: missing)."""
        entry = self.defined.nodes.get(node)
        return dict(entry.answer.dirs or {}) if entry and entry.answer else {}

    def space(self, node: str) -> dict[str, Any]:
        """The node's answer on free space: path -> free, size, inodes, inodes_free."""
        entry = self.defined.nodes.get(node)
        return dict(entry.answer.space or {}) if entry and entry.answer else {}


def asked_nodes(
    cluster: Cluster,
    nodes: Sequence[str],
    only: Sequence[str],
    exclude: Sequence[str],
    core: bool = True,
    holding: Collection[str] | None = None,
) -> list[str]:
    """The chosen nodes that carry a role --role/--exclude leave (by the cluster file) and,
    for an import, that its archive `holding` has members of, then the core node (its version
    and lock): the others have nothing a data command reads or writes."""
    picked = [cluster.node(n) for n in nodes] if nodes else list(cluster.nodes)

    def wanted(role: str) -> bool:
        held = holding is None or role in holding
        return held and (not only or role in only) and role not in exclude

    carrying = [n.name for n in picked if any(wanted(r) for r in n.roles)]
    return list(dict.fromkeys([*carrying, *([cluster.core_node.name] if core else [])]))


def survey(
    cluster: Cluster,
    conns: Connections,
    *,
    nodes: Sequence[str] = (),
    only: Sequence[str] = (),
    exclude: Sequence[str] = (),
    measure: bool = False,
    beside: bool = False,
    core: bool = True,
    holding: Collection[str] | None = None,
) -> Survey:
    """Ask each node that matters once (in parallel), the core node too unless not `core`:
    definitions, the data-dir record, the version; with `measure`, the foreseen data dirs'
    facts (an export); with `beside`, the free space and inodes where each would be staged
    beside it (an import, whose archive `holding` members of those roles: the nodes carrying
    none of them are not asked). An unreachable node stops the command here (exit 5)."""
    bundled = role_definitions.bundled() if measure or beside else {}

    def asked(node: str) -> dict[str, Any]:
        chosen = not nodes or node in nodes  # else only asked as the core node
        wanted = [
            bundled[r]
            for r in cluster.node(node).roles
            if chosen
            and r in bundled
            and (not only or r in only)
            and r not in exclude
            and (holding is None or r in holding)
        ]
        request: dict[str, Any] = {"datadirs": True, "moved_parents": beside}
        declared = [r.data_dirs[d] for r in wanted for d in r.export]
        if beside:
            request["space"] = sorted({posixpath.dirname(p) for p in declared})
        if measure and wanted:
            request["dirs"] = declared
            request["dirs_of"] = {r.name: list(r.export) for r in wanted}
            request["timeout"] = DU_TIMEOUT
        return request

    defined = role_definitions.of_nodes(
        cluster, conns, asked_nodes(cluster, nodes, only, exclude, core, holding), asked
    )
    at_core = defined.nodes.get(cluster.core_node.name)
    return Survey(defined, at_core.version if at_core else None)


def dir_facts(
    found: Survey, conns: Connections, sources: Sequence[DataDir]
) -> dict[DataDir, DirFacts]:
    """Each (located) data dir's facts from the survey; a path it could not foresee is asked
    of its node in a second call. A missing data dir is refused (exit 7)."""
    answers = {s.node: found.dirs(s.node) for s in sources}
    unforeseen = [s for s in sources if s.path not in answers[s.node]]

    def measure(node: str) -> dict[str, Any]:
        paths = [s.path for s in unforeseen if s.node == node]
        return node_facts(conns.get(node), dirs=paths, timeout=DU_TIMEOUT).dirs or {}

    for node, more in each_node((s.node for s in unforeseen), measure, conns.parallel).items():
        answers[node].update(more)
    facts: dict[DataDir, DirFacts] = {}
    for source in sources:
        got = answers[source.node].get(source.path)
        if not got or not got["dir"]:
            raise PreflightRefused(
                f"{source.node}: {source.role}'s data dir {source.path} does not exist",
                hint="is the platform installed there? see `kato status`",
            )
        facts[source] = DirFacts(got["mode"], got["owner"], int(got["size"]))
    return facts


def free_beside(
    found: Survey, conns: Connections, parents: Sequence[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """node -> parent dir -> its filesystem's free space and inodes, for each (node, parent)
    an import stages in: from the survey, and a second call for a parent it did not foresee."""
    answers = {node: found.space(node) for node, _ in parents}
    unforeseen = [(n, p) for n, p in parents if p not in answers[n]]

    def ask(node: str) -> dict[str, Any]:
        paths = sorted({p for n, p in unforeseen if n == node})
        return node_facts(conns.get(node), space=paths).space or {}

    for node, more in each_node((n for n, _ in unforeseen), ask, conns.parallel).items():
        answers[node].update(more)
    return answers
