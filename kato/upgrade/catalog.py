"""`kato release list|show` and the update line of `kato status`: the repository's releases,
where each is on the nodes, and what a release changes compared with the one running."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from kato import release as releases
from kato.config import Cluster
from kato.connect import connections
from kato.errors import UsageError
from kato.migrations import Migration, pending, undone
from kato.roles import Role
from kato.transport.fanout import FanOut, NodeFailure, fan_out
from kato.upgrade import nodes as node_releases
from kato.upgrade.nodes import NodeReleases
from kato.versions import is_orderable, parse


def repository(cluster: Cluster, repo: str | None = None) -> str:
    location = repo or cluster.releases
    if not location:
        raise UsageError(
            "the cluster file names no release repository",
            hint="add `releases: PATH-OR-URL` to it, or pass --repo",
        )
    return str(location)


def gather(cluster: Cluster) -> FanOut[NodeReleases]:
    """Every node's releases, in parallel (unreachable nodes are reported, not fatal)."""
    with connections(cluster) as conns:
        return fan_out(
            [n.name for n in cluster.nodes],
            lambda name: node_releases.gather(conns.get(name)),
            cluster.ssh.parallel,
        )


def running_version(found: dict[str, NodeReleases]) -> str | None:
    """The version most nodes run (the newest of a tie); None when none runs one."""
    counts = Counter(r.current for r in found.values() if r.current)
    if not counts:
        return None
    top = max(counts.values())
    tied = [v for v, n in counts.items() if n == top]
    return max(tied, key=lambda v: parse(v) if is_orderable(v) else parse("0"))


@dataclass(frozen=True)
class ReleaseRow:
    version: str
    digest: str
    migrations: int
    notes: str
    nodes: dict[str, str]  # node -> current / previous / installed / staged / absent
    changed: tuple[str, ...] = ()  # nodes whose staged copy has another digest


@dataclass(frozen=True)
class ReleaseList:
    platform: str
    repository: str
    running: str | None
    releases: tuple[ReleaseRow, ...]
    unreachable: tuple[NodeFailure, ...] = ()
    on_nodes_only: dict[str, tuple[str, ...]] = field(default_factory=dict)


def list_releases(cluster: Cluster, repo: str | None = None) -> ReleaseList:
    location = repository(cluster, repo)
    index = releases.load_index(location)
    found = gather(cluster)
    rows = []
    for entry in index.versions:
        release = releases.load_release(location, entry.version)
        states = {n: r.state_of(entry.version) for n, r in sorted(found.succeeded.items())}
        changed = tuple(
            n
            for n, r in sorted(found.succeeded.items())
            if (v := r.versions.get(entry.version)) and v.digest and v.digest != release.digest
        )
        notes = release.notes.strip().splitlines()[0] if release.notes.strip() else ""
        rows.append(
            ReleaseRow(
                entry.version, release.digest, len(release.migrations), notes, states, changed
            )
        )
    listed = set(index.version_names)
    extra = {
        n: tuple(v for v in sorted(r.versions) if v not in listed)
        for n, r in sorted(found.succeeded.items())
    }
    return ReleaseList(
        index.platform,
        location,
        running_version(found.succeeded),
        tuple(rows),
        tuple(found.failed.values()),
        {n: vs for n, vs in extra.items() if vs},
    )


@dataclass(frozen=True)
class RoleChange:
    role: str
    old_sha256: str | None
    new_sha256: str | None
    action: str  # redeployed, untouched, added, removed
    definition: tuple[str, ...] = ()  # the role.yaml fields that differ


@dataclass(frozen=True)
class ReleaseDiff:
    version: str
    digest: str
    running: str | None
    direction: str  # upgrade, downgrade, same, unknown
    roles: tuple[RoleChange, ...]
    migrations: tuple[Migration, ...]
    undone: tuple[Migration, ...]
    notes: str
    kato: str

    @property
    def changed_roles(self) -> tuple[str, ...]:
        return tuple(c.role for c in self.roles if c.action != "untouched")


FIELDS = ("units", "health", "data_dirs", "order", "serves_during_upgrade", "export")


def definition_changes(old: Role | None, new: Role | None) -> tuple[str, ...]:
    if old is None or new is None:
        return ()
    return tuple(f for f in FIELDS if getattr(old, f) != getattr(new, f))


def direction(old: str | None, new: str) -> str:
    if old is None or not (is_orderable(old) and is_orderable(new)):
        return "unknown"
    a, b = parse(old), parse(new)
    return "same" if a == b else ("upgrade" if a < b else "downgrade")


def diff(old: releases.Release | None, new: releases.Release) -> ReleaseDiff:
    """What going from `old` (None: nothing installed) to `new` changes, role by role."""
    names = sorted(set(new.roles) | set(old.roles if old else ()))
    changes = []
    for role in names:
        before = old.roles[role].sha256 if old and role in old.roles else None
        after = new.roles[role].sha256 if role in new.roles else None
        action = (
            "added"
            if before is None
            else "removed"
            if after is None
            else "untouched"
            if before == after
            else "redeployed"
        )
        fields = definition_changes(
            old.definitions.get(role) if old else None, new.definitions.get(role)
        )
        changes.append(RoleChange(role, before, after, action, fields))
    return ReleaseDiff(
        new.version,
        new.digest,
        old.version if old else None,
        direction(old.version if old else None, new.version),
        tuple(changes),
        pending(old.migrations if old else (), new.migrations),
        undone(old.migrations, new.migrations) if old else (),
        new.notes.strip(),
        str(new.kato),
    )


def show(cluster: Cluster, version: str, repo: str | None = None) -> ReleaseDiff:
    location = repository(cluster, repo)
    new = releases.load_release(location, version)
    running = running_version(gather(cluster).succeeded)
    old = None
    if running is not None and running in releases.load_index(location).version_names:
        old = releases.load_release(location, running)
    return diff(old, new)


@dataclass(frozen=True)
class Update:
    """A newer release than the one running, and the roles it would redeploy."""

    version: str
    roles: tuple[str, ...]


def available_update(location: str, running: str | None) -> Update | None:
    """The newest release of the repository above `running`, or None."""
    if running is None or not is_orderable(running):
        return None
    index = releases.load_index(location)
    newer = [v for v in index.version_names if is_orderable(v) and parse(v) > parse(running)]
    if not newer:
        return None
    newest = max(newer, key=parse)
    old = releases.load_release(location, running) if running in index.version_names else None
    return Update(newest, diff(old, releases.load_release(location, newest)).changed_roles)


def update_for(cluster: Cluster, versions: list[str | None]) -> tuple[Update | None, str | None]:
    """For `kato status`: the update above the version most nodes run, or why none is known."""
    if not cluster.releases:
        return None, None
    counts = Counter(v for v in versions if v)
    if not counts:
        return None, None
    running = counts.most_common(1)[0][0]
    try:
        return available_update(str(cluster.releases), running), None
    except (UsageError, releases.RepositoryUnreachable) as exc:
        return None, exc.message
