"""`kato upgrade status`: the last upgrade's record and where each node is."""

from __future__ import annotations

from dataclasses import dataclass

from kato.config import Cluster
from kato.connect import connections
from kato.transport.fanout import NodeFailure, fan_out
from kato.upgrade import nodes as node_releases
from kato.upgrade import state
from kato.upgrade.state import UpgradeState


@dataclass(frozen=True)
class NodeRow:
    node: str
    current: str | None
    previous: str | None
    target: str  # the upgrade target's state on this node


@dataclass(frozen=True)
class UpgradeStatus:
    record: UpgradeState | None
    nodes: tuple[NodeRow, ...]
    unreachable: tuple[NodeFailure, ...]

    @property
    def next_step(self) -> str:
        rec = self.record
        if rec is None:
            return "no upgrade has run on this cluster"
        if rec.unfinished:
            return (
                f"interrupted in {rec.phase}: `kato upgrade resume` continues it, "
                "`kato upgrade rollback` undoes it"
            )
        if rec.result == "done":
            return f"done; `kato upgrade rollback` returns to {rec.source}"
        return f"{rec.result}: the cluster runs {rec.source}"


def upgrade_status(cluster: Cluster) -> UpgradeStatus:
    with connections(cluster) as conns:
        rec = state.read(conns.get(cluster.core))
        found = fan_out(
            [n.name for n in cluster.nodes],
            lambda name: node_releases.gather(conns.get(name)),
            cluster.ssh.parallel,
        )
    rows = {
        n: NodeRow(n, r.current, r.previous, r.state_of(rec.target) if rec else "-")
        for n, r in found.succeeded.items()
    }
    rows |= {n: NodeRow(n, None, None, "did not answer") for n in found.failed}
    return UpgradeStatus(rec, tuple(rows[n] for n in sorted(rows)), tuple(found.failed.values()))
