"""`kato upgrade plan V`: every check an upgrade makes before it touches a node, and the exact
sequence it would follow. Facts are gathered first; `judge` is a pure function of them."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from kato import __version__
from kato import release as releases
from kato.config import Cluster
from kato.migrations import Migration, pending
from kato.roles import Role
from kato.status import NodeStatus
from kato.transport.fanout import NodeFailure
from kato.upgrade.nodes import NodeReleases
from kato.versions import is_orderable, parse

KINDS = ("in-place", "graceful", "stage")
SPACE_FACTOR = 1.2  # headroom over the artifacts' packed + unpacked bytes


@dataclass(frozen=True)
class Refusal:
    check: str
    message: str
    hint: str


@dataclass(frozen=True)
class Facts:
    """What the nodes and the repository said, for one target version."""

    target: releases.Release
    old: releases.Release | None
    running: str | None
    nodes: dict[str, NodeReleases]
    health: dict[str, NodeStatus]
    unreachable: tuple[NodeFailure, ...]
    patches: dict[str, tuple[str, ...]]  # node -> applied patches (name@version)
    verified: str | None  # None when every artifact matched, else the problem
    unpacked: dict[str, int]  # role -> bytes of its artifact, packed + unpacked


@dataclass(frozen=True)
class Preflight:
    version: str
    digest: str
    kind: str
    running: str | None
    direction: str
    checks: tuple[str, ...]
    refusals: tuple[Refusal, ...]
    sequence: tuple[str, ...]
    migrations: tuple[Migration, ...] = ()
    dropped_patches: tuple[str, ...] = ()
    nothing_to_do: bool = False
    space: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.refusals


def unpacked_bytes(artifact: Path) -> int:
    """The artifact's size plus what unpacking it writes."""
    with tarfile.open(artifact) as tar:
        return artifact.stat().st_size + sum(m.size for m in tar.getmembers())


def direction_of(running: str | None, version: str) -> str:
    if running is None or not (is_orderable(running) and is_orderable(version)):
        return "unknown"
    old, new = parse(running), parse(version)
    return "same" if old == new else ("upgrade" if old < new else "downgrade")


def judge(cluster: Cluster, facts: Facts, kind: str, allow_downgrade: bool) -> Preflight:
    """Every check, in order; a refusal names the next step."""
    target, refusals, checks = facts.target, [], []

    def refuse(check: str, message: str, hint: str) -> None:
        refusals.append(Refusal(check, message, hint))

    if facts.unreachable:
        names = ", ".join(f"{f.node} ({f.message})" for f in facts.unreachable)
        refuse("reachable", f"no answer from {names}", "bring the nodes back (`kato status`)")
    else:
        checks.append(f"every node answers ({len(facts.nodes)})")
    sick = [
        f"{n}: {r.role} {r.health}" for n, s in facts.health.items() for r in s.roles if not r.ok
    ]
    if sick:
        refuse(
            "healthy",
            "unhealthy before the upgrade: " + "; ".join(sick),
            "make the cluster healthy first (`kato status`, `kato start`)",
        )
    elif facts.health:
        checks.append("every role is healthy")
    if facts.verified:
        refuse(
            "verified",
            f"release {target.version} failed verification: {facts.verified}",
            "nothing was changed; fix or rebuild the repository, then plan again",
        )
    else:
        checks.append(f"every artifact of {target.version} matches its sha256")
    if not target.kato.contains(__version__):
        refuse(
            "kato version",
            f"{target.version} needs kato {target.kato}, this is {__version__}",
            f"install a kato in {target.kato} and run it again",
        )
    else:
        checks.append(f"kato {__version__} is in {target.version}'s range ({target.kato})")
    mixed = sorted({r.current for r in facts.nodes.values() if r.current} - {facts.running})
    if mixed:
        refuse(
            "one version",
            f"the nodes run different versions ({facts.running}, "
            f"{', '.join(str(m) for m in mixed)})",
            "finish or roll back the interrupted upgrade (`kato upgrade status`)",
        )
    direction = direction_of(facts.running, target.version)
    if direction == "downgrade" and not allow_downgrade:
        refuse(
            "direction",
            f"{target.version} is older than the running {facts.running}",
            "to go back after an upgrade use `kato upgrade rollback`; or pass --allow-downgrade",
        )
    if kind == "graceful" and direction in ("upgrade", "downgrade"):
        old_major, new_major = parse(str(facts.running)).major, parse(target.version).major
        if old_major != new_major:
            refuse(
                "major",
                f"{facts.running} -> {target.version} crosses a major version: "
                "a graceful upgrade stays within one",
                f"upgrade in place: `kato upgrade in-place {target.version}`",
            )
        else:
            checks.append(f"{facts.running} -> {target.version} stays within major {new_major}")
    missing = _roles_missing(cluster, target)
    if missing:
        refuse(
            "roles",
            f"{target.version} has no {', '.join(missing)}",
            "a node would lose a role: change the cluster file or pick another release",
        )
    space = _space(cluster, facts)
    short = [
        f"{n} has {facts.nodes[n].free} bytes, needs {need}"
        for n, need in space.items()
        if n in facts.nodes and facts.nodes[n].free < need
    ]
    if short:
        refuse(
            "space",
            "not enough space to stage: " + "; ".join(short),
            "free space under /var/lib/kato (`kato release prune --keep 1`)",
        )
    elif space:
        checks.append("every node has room to stage the release")
    changed = [
        n
        for n, r in facts.nodes.items()
        if (v := r.versions.get(target.version)) and v.digest and v.digest != target.digest
    ]
    if changed:
        refuse(
            "digest",
            f"{', '.join(changed)} staged {target.version} from another manifest "
            "(the repository changed since)",
            "find out why the release changed; `kato release prune` removes the staged copy",
        )
    migrations = pending(facts.old.migrations if facts.old else (), target.migrations)
    dropped = tuple(f"{n}: {p}" for n, ps in facts.patches.items() for p in ps)
    nothing = direction == "same" and all(r.current == target.version for r in facts.nodes.values())
    return Preflight(
        target.version,
        target.digest,
        kind,
        facts.running,
        direction,
        tuple(checks),
        tuple(refusals),
        sequence(cluster, facts, kind, migrations),
        migrations,
        dropped,
        nothing,
        space,
    )


def _roles_missing(cluster: Cluster, target: releases.Release) -> list[str]:
    return sorted({r for n in cluster.nodes for r in n.roles} - set(target.roles))


def _space(cluster: Cluster, facts: Facts) -> dict[str, int]:
    need = {}
    for node in cluster.nodes:
        have = facts.nodes.get(node.name)
        version = have.versions.get(facts.target.version) if have else None
        todo = [
            r
            for r in node.roles
            if r in facts.target.roles
            and not (version and version.has(r, facts.target.roles[r].sha256))
        ]
        need[node.name] = int(sum(facts.unpacked.get(r, 0) for r in todo) * SPACE_FACTOR)
    return need


def roles_in(cluster: Cluster, definitions: dict[str, Role]) -> list[Role]:
    """The cluster's roles in start order, as `definitions` declares them."""
    names = {r for n in cluster.nodes for r in n.roles if r in definitions}
    return sorted((definitions[r] for r in names), key=lambda r: (r.order, r.name))


def carriers(cluster: Cluster, role: str) -> str:
    return ", ".join(n.name for n in cluster.nodes if role in n.roles)


def sequence(
    cluster: Cluster, facts: Facts, kind: str, migrations: tuple[Migration, ...]
) -> tuple[str, ...]:
    """What the upgrade would do, one line per step."""
    new = facts.target
    new_roles = roles_in(cluster, dict(new.definitions))
    old_roles = roles_in(cluster, dict(facts.old.definitions)) if facts.old else new_roles
    touched = sorted({f"{m.role} ({', '.join(m.data_dirs)})" for m in migrations})
    lines = [f"stage {new.version} on every node (upload, verify, unpack; nothing live changes)"]
    if kind == "stage":
        return tuple(lines)
    lines.append(
        "export " + ", ".join(touched) + " and verify the archive (--no-backup skips it)"
        if touched
        else "no migration: no pre-upgrade export is needed"
    )
    serving = [r for r in old_roles if r.serves_during_upgrade] if kind == "graceful" else []
    stopped = [r for r in reversed(old_roles) if r not in serving]
    for role in stopped:
        lines.append(f"stop {role.name} on {carriers(cluster, role.name)} (down from here)")
    for role in serving:
        lines.append(f"{role.name} keeps serving on {carriers(cluster, role.name)}")
    lines.append(
        f"activate {new.version} on every node (hooks, units, current -> {new.version})"
        if kind == "in-place"
        else f"takeover: each of {', '.join(r.name for r in serving)} one node at a time: "
        "drain, stop, activate, start, health, undrain"
    )
    for migration in migrations:
        lines.append(f"migrate: {migration.name} on {carriers(cluster, migration.role)}")
    for role in new_roles:
        if role.name in {r.name for r in serving}:
            continue
        lines.append(
            f"start {role.name} on {carriers(cluster, role.name)} and wait for its "
            f"health (up to {role.health.timeout:g}s)"
        )
    lines.append(
        "a failed health gate rolls every node back to "
        f"{facts.running} (and restores the export if a migration ran)"
    )
    return tuple(lines)
