"""`kato release prune --keep N`: remove old releases from the nodes. The current and the
previous release always stay (a rollback needs no download), and so do the N newest."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kato.config import Cluster
from kato.connect import connections
from kato.errors import UsageError
from kato.operation import operation
from kato.transport.fanout import NodeFailure, fan_out
from kato.upgrade import nodes as node_releases
from kato.upgrade.nodes import NodeReleases
from kato.versions import is_orderable, parse


@dataclass(frozen=True)
class PruneOutcome:
    keep: int
    dry_run: bool
    removals: dict[str, tuple[str, ...]]  # node -> versions removed (or to remove)
    failed: dict[str, NodeFailure] = field(default_factory=dict)


def newest_first(versions: Sequence[str]) -> list[str]:
    orderable = sorted((v for v in versions if is_orderable(v)), key=parse, reverse=True)
    return orderable + sorted(v for v in versions if not is_orderable(v))


def plan_node(have: NodeReleases, keep: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Pure: (kept, removed) versions of one node."""
    every = list(have.versions)
    kept = {v for v in (have.current, have.previous) if v} | set(newest_first(every)[:keep])
    removed = tuple(v for v in newest_first(every) if v not in kept)
    return tuple(v for v in newest_first(every) if v in kept), removed


def prune(
    cluster: Cluster,
    keep: int,
    *,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    command: Sequence[str] = (),
) -> PruneOutcome:
    if keep < 0:
        raise UsageError(f"--keep {keep}: must be 0 or more", hint="e.g. --keep 2")
    with connections(cluster) as conns:
        found = fan_out(
            [n.name for n in cluster.nodes],
            lambda name: node_releases.gather(conns.get(name)),
            cluster.ssh.parallel,
        )
        plans = {n: plan_node(r, keep) for n, r in found.succeeded.items()}
        removals = {n: p[1] for n, p in sorted(plans.items())}
        if dry_run or not any(removals.values()):
            return PruneOutcome(keep, dry_run, removals, dict(found.failed))
        with operation(conns, cluster.core, list(command), lock_wait=lock_wait) as op:

            def one(node: str) -> tuple[str, ...]:
                started = time.monotonic()
                kept = json.dumps(list(plans[node][0]))
                said = node_releases.run_agent(conns.get(node), "prune", kept)
                removed = tuple(json.loads(said))
                op.step(
                    node,
                    f"removed {', '.join(removed) or 'nothing'}",
                    None,
                    "ok",
                    time.monotonic() - started,
                )
                return removed

            done = fan_out([n for n, r in removals.items() if r], one, cluster.ssh.parallel)
            failed = {**found.failed, **done.failed}
            op.settle(bool(done.succeeded), bool(failed))
    return PruneOutcome(keep, False, dict(done.succeeded), failed)
