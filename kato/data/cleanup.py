"""`kato data cleanup`: remove what imports keep on the nodes (previous data, stale staging)."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from kato.config import Cluster
from kato.connect import connections
from kato.data.placement import PREVIOUS, STAGING
from kato.data.selection import data_dirs
from kato.data.survey import survey
from kato.operation import operation
from kato.transport.fanout import NodeFailure, fan_out

FIND = """
import json, os, subprocess, sys
found = []
for parent in sys.argv[2:]:
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        continue
    for name in sorted(names):
        if name.startswith(tuple(sys.argv[1].split(","))):
            path = os.path.join(parent, name)
            du = subprocess.run(["du", "-sb", path], capture_output=True, text=True)
            found.append([path, int(du.stdout.split()[0]) if du.returncode == 0 else 0])
print(json.dumps(found))
"""


@dataclass(frozen=True)
class Leftover:
    node: str
    path: str
    bytes: int


@dataclass(frozen=True)
class CleanupResult:
    leftovers: tuple[Leftover, ...]
    dry_run: bool
    failed: dict[str, NodeFailure]


def cleanup(
    cluster: Cluster,
    *,
    nodes: Sequence[str] = (),
    lock_wait: float = 0,
    dry_run: bool = False,
    command: Sequence[str] = (),
) -> CleanupResult:
    """Find (and unless dry_run, remove) the previous data and staging dirs of imports."""
    with connections(cluster) as conns:
        asked = survey(cluster, conns, nodes=nodes, core=False)  # one call per node
        declared = data_dirs(cluster, asked.defined, nodes=nodes)
        # an import stages beside where the data dir lives now; one from before a relocation
        # left its copies beside the declared path
        targets = (*declared, *asked.located(declared))
        parents = {
            node: sorted({posixpath.dirname(t.path) for t in targets if t.node == node})
            for node in dict.fromkeys(t.node for t in targets)
        }

        def find(node: str) -> list[Leftover]:
            argv = ("python3", "-c", FIND, f"{PREVIOUS},{STAGING}", *parents[node])
            found = json.loads(conns.get(node).run(argv, timeout=600).stdout)
            return [Leftover(node, path, size) for path, size in found]

        scan = fan_out(list(parents), find, cluster.ssh.parallel)
        leftovers = tuple(item for node in parents for item in scan.succeeded.get(node, []))
        if dry_run or not leftovers:
            return CleanupResult(leftovers, dry_run, scan.failed)
        with operation(conns, cluster.core_node.name, command, lock_wait=lock_wait) as op:
            for item in leftovers:
                done = conns.get(item.node).run(("rm", "-rf", "--", item.path), timeout=3600)
                op.step(item.node, f"remove {item.path}", done.argv, "ok", done.seconds)
            op.settle(bool(scan.succeeded), bool(scan.failed))
    return CleanupResult(leftovers, dry_run, scan.failed)
