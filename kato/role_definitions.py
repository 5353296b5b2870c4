"""Which role definitions apply to a node: those of the release it runs.

Every release carries its roles' definitions (role.yaml inside each artifact and in its
release.yaml), so a new version may change a unit, a health check or a data dir. The one
resolver for every command that acts on roles (status, start/stop/restart, data export and
import, patch, run, uninstall, monitoring) is `of_node`/`of_nodes`: the definitions installed with
the node's current release, else those of that version in the cluster's release repository,
else — only for a node or release that carries none — the definitions kato itself bundles,
and `NodeRoles.source` says which (shown with --verbose). An upgrade reads both sides from the
releases themselves (`of_release`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kato import facts, yamldoc
from kato.config import Cluster
from kato.errors import ExitCode, KatoError
from kato.facts import NodeFacts
from kato.roles import Role, RolesInvalid, bundled_directory, load_roles, parse_definition
from kato.transport.base import Transport
from kato.transport.fanout import NodeFailure, fan_out
from kato.transport.pool import Connections

if TYPE_CHECKING:  # a release repository is read only for a node whose release carries none
    from kato.release import Release

_CACHE: dict[tuple[str, str], dict[str, Role]] = {}


@dataclass(frozen=True)
class NodeRoles:
    """The role definitions one node follows, and where they come from."""

    node: str
    version: str | None  # the release the node runs (None: none installed)
    roles: Mapping[str, Role]
    source: str  # "release 1.2.0 on the node", ..., or "kato's bundled definitions (why)"
    # the whole answer of the agent call that read them: a command asks that one call for
    # everything else it needs of the node too (of_nodes' `asked`)
    answer: NodeFacts | None = None

    @property
    def bundled(self) -> bool:
        return self.source.startswith("kato's bundled")


@dataclass(frozen=True)
class ClusterRoles:
    """Every chosen node's definitions: each node follows the release it runs."""

    nodes: Mapping[str, NodeRoles]

    def of(self, node: str) -> Mapping[str, Role]:
        return self.nodes[node].roles

    def known(self) -> dict[str, Role]:
        """Every role some node defines (the first node's definition of each), to check names
        given on the command line against."""
        found: dict[str, Role] = {}
        for entry in self.nodes.values():
            for name, role in entry.roles.items():
                found.setdefault(name, role)
        return found

    def sources(self) -> list[str]:
        """One line per node: where its definitions come from (for --verbose)."""
        return [f"{n}: role definitions from {e.source}" for n, e in self.nodes.items()]


def roles_directory() -> Path:
    """The role definitions kato carries: $KATO_ROLES, else the bundled ones (the wheel's
    package data, or roles/ of the checkout kato runs from)."""
    override = os.environ.get("KATO_ROLES")
    return Path(override) if override else bundled_directory()


def bundled() -> dict[str, Role]:
    return load_roles(roles_directory())


def for_version(cluster: Cluster, version: str | None) -> dict[str, Role]:
    """The roles of `version` in the cluster's repository, else the bundled ones."""
    return _from_repository(cluster, version) or bundled()


def without_nodes(cluster: Cluster) -> list[dict[str, Role]]:
    """Every set of definitions kato can read without asking a node: its bundled ones and
    each version's in the cluster's release repository. A name given on the command line
    that none of them knows is refused before any node is contacted."""
    from kato import release as releases

    versions: tuple[str, ...] = ()
    if cluster.releases:
        try:
            versions = releases.load_index(cluster.releases).version_names
        except KatoError:  # no readable repository: the nodes' own definitions decide
            versions = ()
    return [bundled(), *(_from_repository(cluster, v) for v in versions)]


def of_release(release: Release) -> dict[str, Role]:
    """A loaded release's definitions (the bundled ones for a release without them)."""
    return dict(release.definitions) or bundled()


def of_node(cluster: Cluster, transport: Transport, node: str, **asked: Any) -> NodeRoles:
    """The definitions of the release `node` runs, read from the node in one agent call,
    which also answers whatever else `asked` names (facts.node_facts' keywords)."""
    found = facts.node_facts(transport, definitions=True, **asked)
    return replace(resolve(cluster, node, found.version, found.definitions or {}), answer=found)


def of_nodes(
    cluster: Cluster,
    conns: Connections,
    nodes: Iterable[str],
    asked: Callable[[str], Mapping[str, Any]] | None = None,
) -> ClusterRoles:
    """Every node's definitions, in parallel over the command's connections, each node also
    answering `asked(node)` in the same call. A node that cannot be asked stops the command
    before it changes anything: kato does not act on a node whose roles it does not know."""
    names = list(dict.fromkeys(nodes))

    def one(node: str) -> NodeRoles:
        return of_node(cluster, conns.get(node), node, **(asked(node) if asked else {}))

    done = fan_out(names, one, conns.parallel)
    if done.failed:
        raise DefinitionsUnknown(done.failed)
    return ClusterRoles({n: done.succeeded[n] for n in names})


class DefinitionsUnknown(KatoError):
    """Some nodes could not say which release they run (exit 5 when unreachable)."""

    def __init__(self, failed: Mapping[str, NodeFailure]) -> None:
        first = next(iter(failed.values()))
        super().__init__(
            f"cannot read the role definitions of {', '.join(sorted(failed))} "
            f"({first.phase}: {first.message}); nothing was changed",
            hint="`kato status` shows which nodes answer; --node leaves the others out",
        )
        self.exit_code = ExitCode(first.exit_code)


def resolve(
    cluster: Cluster, node: str, version: str | None, texts: Mapping[str, str]
) -> NodeRoles:
    """Pure: the node's definitions from the role.yaml texts its current release holds."""
    if version is not None and texts:
        roles = _parse(node, version, texts)
        return NodeRoles(node, version, roles, f"release {version} on the node")
    if version is not None:
        from_repo = _from_repository(cluster, version)
        if from_repo:
            return NodeRoles(node, version, from_repo, f"release {version} in the repository")
        why = f"release {version} carries none"
    else:
        why = "no release installed"
    return NodeRoles(node, version, bundled(), f"kato's bundled definitions ({why})")


def _parse(node: str, version: str, texts: Mapping[str, str]) -> dict[str, Role]:
    problems: list[str] = []
    roles: dict[str, Role] = {}
    for name, text in sorted(texts.items()):
        where = f"{node}:/var/lib/kato/releases/{version}/{name}/role.yaml"
        try:
            raw = yamldoc.load(text)
        except yamldoc.YamlProblem as exc:
            problems.append(f"{where}: is not valid YAML ({exc})")
            continue
        role = parse_definition(raw, name, where, problems)
        if role is not None:
            roles[name] = role
    if problems:
        raise RolesInvalid(problems)
    return roles


def _from_repository(cluster: Cluster, version: str | None) -> dict[str, Role]:
    if version is None or not cluster.releases:
        return {}
    key = (str(cluster.releases), version)
    if key not in _CACHE:
        from kato import release as releases

        try:
            _CACHE[key] = dict(releases.load_release(cluster.releases, version).definitions)
        except KatoError:  # a version this repository does not list, or it cannot be read
            _CACHE[key] = {}
    return _CACHE[key]


Definitions = Mapping[str, Role] | ClusterRoles  # one set for every node, or each node's own


def role_of(defined: Definitions, node: str, name: str) -> Role | None:
    """Role `name` as `node` defines it (None when the node's release has no such role)."""
    if not isinstance(defined, ClusterRoles):
        return defined.get(name)
    if node in defined.nodes:
        return defined.of(node).get(name)
    return defined.known().get(name)


def known(defined: Definitions) -> Mapping[str, Role]:
    """Every role name some node defines (to check --only and friends against)."""
    return defined.known() if isinstance(defined, ClusterRoles) else defined
