"""What every upgrade command starts with: the target release fetched and verified whole
(before any node is touched) and the facts of every node, judged by kato/upgrade/preflight.py."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kato import release as releases
from kato import role_definitions
from kato.config import Cluster
from kato.errors import KatoError, PreflightRefused
from kato.patch import nodes as patch_nodes
from kato.status import NodeStatus, node_status
from kato.transport.fanout import fan_out
from kato.transport.pool import Connections
from kato.upgrade import catalog, preflight
from kato.upgrade import nodes as node_releases
from kato.upgrade.nodes import NodeReleases
from kato.upgrade.preflight import Facts, Preflight


@dataclass(frozen=True)
class Verified:
    """Every artifact the cluster needs, fetched into a local directory and checked."""

    files: dict[str, Path]  # role -> verified local file
    problem: str | None = None


def needed_roles(cluster: Cluster, release: releases.Release) -> list[str]:
    return sorted({r for n in cluster.nodes for r in n.roles if r in release.roles})


@contextmanager
def verified(cluster: Cluster, location: str, release: releases.Release) -> Iterator[Verified]:
    """Fetch and verify every needed artifact; a mismatch is reported, never raised here."""
    with tempfile.TemporaryDirectory(prefix="kato-upgrade-") as tmp:
        files: dict[str, Path] = {}
        try:
            for role in needed_roles(cluster, release):
                files[role] = releases.fetch_artifact(location, release, role, Path(tmp))
        except KatoError as exc:
            yield Verified({}, exc.message)
            return
        yield Verified(files)


def gather(
    cluster: Cluster, conns: Connections, location: str, target: releases.Release, ok: Verified
) -> Facts:
    """Every node's releases, health and patches, and the release it runs."""

    def one(name: str) -> tuple[NodeReleases, NodeStatus, tuple[str, ...]]:
        transport, node = conns.get(name), cluster.node(name)
        found = node_releases.gather(transport)
        roles = role_definitions.for_version(cluster, found.current)
        health = node_status(transport, node, roles)[0]
        applied = patch_nodes.gather(transport, node, roles).applied
        return found, health, tuple(f"{p} (for {a.version})" for p, a in sorted(applied.items()))

    done = fan_out([n.name for n in cluster.nodes], one, cluster.ssh.parallel)
    found = {n: r[0] for n, r in done.succeeded.items()}
    running = catalog.running_version(found)
    old = None
    if running is not None and running in releases.load_index(location).version_names:
        old = releases.load_release(location, running)
    return Facts(
        target,
        old,
        running,
        found,
        {n: r[1] for n, r in done.succeeded.items()},
        tuple(done.failed.values()),
        {n: r[2] for n, r in done.succeeded.items() if r[2]},
        ok.problem,
        {r: preflight.unpacked_bytes(p) for r, p in ok.files.items()},
    )


def refuse(result: Preflight) -> None:
    """Raise exit 7 with every refusal and its next step, when there is one."""
    if result.ok:
        return
    lines = "\n".join(f"  {r.check}: {r.message}" for r in result.refusals)
    hints = "; ".join(dict.fromkeys(r.hint for r in result.refusals))
    raise PreflightRefused(
        f"the upgrade to {result.version} is refused (nothing was changed):\n{lines}", hint=hints
    )


def plan(
    cluster: Cluster,
    version: str,
    *,
    kind: str = "in-place",
    allow_downgrade: bool = False,
    repo: str | None = None,
) -> Preflight:
    """The preflight: changes nothing; `refuse(result)` turns its refusals into exit 7."""
    location = catalog.repository(cluster, repo)
    target = releases.load_release(location, version)
    from kato.connect import connections

    with verified(cluster, location, target) as ok, connections(cluster) as conns:
        facts = gather(cluster, conns, location, target, ok)
    return preflight.judge(cluster, facts, kind, allow_downgrade)
