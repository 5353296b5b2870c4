"""`kato upgrade stage V`: upload, verify and unpack a release on every node in parallel,
touching nothing that runs. Idempotent: a role staged already (same sha256) is left alone."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from kato import release as releases
from kato.config import Cluster
from kato.connect import connections
from kato.errors import RemoteCommandFailed
from kato.operation import Operation, operation
from kato.plan import Prefixed
from kato.remote import safe_write
from kato.transport.fanout import NodeFailure, fan_out
from kato.transport.pool import Connections
from kato.upgrade import catalog, prepare
from kato.upgrade.nodes import STAGING, NodeReleases, run_agent
from kato.upgrade.preflight import Facts, Preflight, judge

STAGE_CHECKS = ("reachable", "verified", "roles", "space", "digest")


@dataclass(frozen=True)
class NodeStage:
    node: str
    roles: tuple[str, ...]  # to stage
    already: tuple[str, ...]  # staged (or current) already
    bytes: int

    def shown(self, version: str) -> str:
        parts = []
        if self.roles:
            parts.append(
                f"stage {', '.join(self.roles)} {version} "
                f"({len(self.roles)} artifacts, {self.bytes / 1024:.0f} KiB)"
            )
        if self.already:
            parts.append(f"{', '.join(self.already)} staged already")
        return f"{self.node}: " + ("; ".join(parts) or "nothing to stage")


@dataclass(frozen=True)
class StageOutcome:
    version: str
    digest: str
    dry_run: bool
    nodes: tuple[NodeStage, ...]
    staged: dict[str, int] = field(default_factory=dict)
    failed: dict[str, NodeFailure] = field(default_factory=dict)


def plan_node(
    cluster: Cluster,
    name: str,
    have: NodeReleases,
    release: releases.Release,
    files: dict[str, Path],
) -> NodeStage:
    """Pure: the roles of one node that still have to be staged."""
    version = have.versions.get(release.version)
    todo, done = [], []
    for role in cluster.node(name).roles:
        sha = release.artifact(role).sha256
        if have.current == release.version or (version and version.has(role, sha)):
            done.append(role)
        else:
            todo.append(role)
    size = sum(files[r].stat().st_size for r in todo if r in files)
    return NodeStage(name, tuple(todo), tuple(done), size)


def stage_node(
    conns: Connections,
    op: Operation,
    plan: NodeStage,
    release: releases.Release,
    files: dict[str, Path],
) -> int:
    """Upload each artifact to the node's private staging dir, then the agent verifies and
    unpacks it; the uploaded file is removed whatever happens."""
    transport = conns.get(plan.node)
    for role in plan.roles:
        started = time.monotonic()
        artifact = release.artifact(role)
        remote = f"{STAGING}/{role}-{release.version}.tar.gz"
        argv = safe_write.argv(remote, 0o600)  # never through a link planted in staging
        with files[role].open("rb") as source:
            feed = Prefixed(safe_write.prelude(), source)
            sent = transport.stream_in(argv, feed)  # type: ignore[arg-type]
        if not sent.ok:
            raise RemoteCommandFailed(plan.node, argv, sent.status, sent.stderr)
        said = run_agent(
            transport, "stage", release.version, release.digest, role, artifact.sha256, remote
        )
        op.step(plan.node, said.strip(), argv, "ok", time.monotonic() - started)
    return len(plan.roles)


def refuse_unless_stageable(result: Preflight) -> None:
    relevant = [r for r in result.refusals if r.check in STAGE_CHECKS]
    prepare.refuse(replace(result, refusals=tuple(relevant)))


def stage_all(
    cluster: Cluster,
    conns: Connections,
    op: Operation,
    release: releases.Release,
    verified: prepare.Verified,
    facts: Facts,
) -> StageOutcome:
    """Stage on every node in parallel (inside an operation already begun)."""
    plans = [plan_node(cluster, n, facts.nodes[n], release, verified.files) for n in facts.nodes]
    busy = [p for p in plans if p.roles]
    by_name = {p.node: p for p in busy}
    done = fan_out(
        [p.node for p in busy],
        lambda n: stage_node(conns, op, by_name[n], release, verified.files),
        cluster.ssh.parallel,
    )
    return StageOutcome(
        release.version,
        release.digest,
        False,
        tuple(plans),
        dict(done.succeeded),
        dict(done.failed),
    )


def stage(
    cluster: Cluster,
    version: str,
    *,
    repo: str | None = None,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    command: Sequence[str] = (),
) -> StageOutcome:
    location = catalog.repository(cluster, repo)
    release = releases.load_release(location, version)
    with prepare.verified(cluster, location, release) as ok, connections(cluster) as conns:
        facts = prepare.gather(cluster, conns, location, release, ok)
        refuse_unless_stageable(judge(cluster, facts, "stage", True))
        if dry_run:
            plans = tuple(
                plan_node(cluster, n, facts.nodes[n], release, ok.files) for n in facts.nodes
            )
            return StageOutcome(version, release.digest, True, plans)
        with operation(conns, cluster.core, list(command), lock_wait=lock_wait) as op:
            outcome = stage_all(cluster, conns, op, release, ok, facts)
            op.settle(bool(outcome.staged), bool(outcome.failed))
    return outcome
