"""What monitoring reads from the cluster in one pass: `kato status` plus each node's load,
the disk and inode use of every data dir, the age of the last scheduled backup and a lock
left past its TTL. `kato check` judges it; `kato status --prometheus` writes it out."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from kato import lock, status
from kato.config import Cluster
from kato.connect import connections, select_nodes
from kato.errors import KatoError
from kato.facts import Fact
from kato.status import ClusterStatus, NodeStatus
from kato.transport.base import CommandResult
from kato.transport.fanout import FanOut, NodeFailure, failure, fan_out

TEXTFILE_DIR = "/var/lib/node_exporter/textfile_collector"  # where scheduled exports report
USAGE = """
import json, os, sys
out = {"load": os.getloadavg(), "cpus": os.cpu_count() or 1, "dirs": {}}
for path in sys.argv[1:]:
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe) or "/"
    st = os.statvfs(probe)
    used = lambda total, free: 0.0 if total == 0 else 100.0 * (total - free) / total
    out["dirs"][path] = {"exists": os.path.isdir(path),
                         "disk": used(st.f_blocks, st.f_bavail),
                         "inodes": used(st.f_files, st.f_favail)}
print(json.dumps(out))
"""
BACKUPS = """
import glob, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "kato_data_export*.prom"))):
    with open(path) as f:
        print(f.read())
"""


@dataclass(frozen=True)
class DirUse:
    role: str
    name: str
    path: str
    exists: bool
    disk_pct: float  # of the filesystem holding it, as df shows for non-root users
    inodes_pct: float


@dataclass(frozen=True)
class NodeUse:
    load1: float
    cpus: int
    dirs: tuple[DirUse, ...]


@dataclass(frozen=True)
class Snapshot:
    cluster: str
    now: float
    status: ClusterStatus
    use: dict[str, NodeUse]
    last_backup: float | None  # Unix time of the newest successful scheduled export
    lock_overdue: float | None  # seconds a left lock is past its TTL (its holder is gone)
    core_checked: bool  # the core node was among the nodes looked at, and answered


def _parse_usage(result: CommandResult) -> dict[str, object]:
    if not result.ok:
        raise KatoError(f"reading load and disk use failed: {result.error_line}")
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def _usage(node: NodeStatus, transport_result: dict[str, object]) -> NodeUse:
    load = transport_result["load"]
    dirs = transport_result["dirs"]
    assert isinstance(load, list) and isinstance(dirs, dict)
    return NodeUse(
        float(load[0]),
        int(str(transport_result["cpus"])),
        tuple(
            DirUse(
                d.role,
                d.name,
                d.path,
                bool(dirs[d.path]["exists"]),
                float(dirs[d.path]["disk"]),
                float(dirs[d.path]["inodes"]),
            )
            for d in node.data_dirs
        ),
    )


def last_backup(text: str) -> float | None:
    """The newest last-success time in the scheduled exports' metric files (0 means never)."""
    from kato.data.metrics import previous_values

    times = [
        previous_values(block).get("last_success_timestamp_seconds", 0.0)
        for block in text.split("\n\n")
    ]
    newest = max(times, default=0.0)
    return newest if newest > 0 else None


def snapshot(
    cluster: Cluster, names: list[str] | None = None, role_filter: list[str] | None = None
) -> Snapshot:
    chosen = select_nodes(cluster, names, role_filter)
    with connections(cluster) as conns:

        def one(name: str) -> tuple[NodeStatus, NodeUse]:
            transport = conns.get(name)
            node, _ = status.own_status(cluster, transport, name)
            fact = Fact(("python3", "-c", USAGE, *[d.path for d in node.data_dirs]), _parse_usage)
            return node, _usage(node, fact.gather(transport))

        found: FanOut[tuple[NodeStatus, NodeUse]] = fan_out(
            [n.name for n in chosen], one, cluster.ssh.parallel
        )
        core_checked = cluster.core in found.succeeded
        backup, overdue, held, lock_error = None, None, None, None
        if core_checked:
            core = conns.get(cluster.core)
            try:
                state = lock.status(core)
                held = state.record if state.alive else None
                if state.record is not None and not state.alive:
                    record = state.record
                    overdue = (
                        state.now - float(record.get("heartbeat", 0)) - float(record.get("ttl", 0))
                    )
                shown = core.run(("python3", "-c", BACKUPS, TEXTFILE_DIR), check=False)
                backup = last_backup(shown.stdout) if shown.ok else None
            except KatoError as exc:
                lock_error = failure(cluster.core, exc).message
    order = [n.name for n in chosen]
    failed: tuple[NodeFailure, ...] = tuple(found.failed[n] for n in order if n in found.failed)
    cluster_status = ClusterStatus(
        cluster.name,
        tuple(found.succeeded[n][0] for n in order if n in found.succeeded),
        failed,
        held,
        lock_error,
    )
    use = {n: found.succeeded[n][1] for n in order if n in found.succeeded}
    return Snapshot(cluster.name, time.time(), cluster_status, use, backup, overdue, core_checked)
