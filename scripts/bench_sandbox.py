"""Benchmark `kato sandbox up` with a cached image (3 and 10 nodes) and memory per idle node.

Prints the median of --runs runs; the 3-node `up` is the baseline the 10-node one is compared
with. Memory is the proportional set size (PSS) of every process of a node, after it settled.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from bench_common import kato, require_root, sandbox_name

NAME = sandbox_name("bench")


def timed_up(nodes: int) -> float:
    kato("sandbox", "down", "--name", NAME)
    started = time.monotonic()
    kato("sandbox", "up", "--name", NAME, "--nodes", str(nodes))
    return time.monotonic() - started


def kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def node_memory_mib(field: str) -> list[float]:
    """PSS or RSS of each node's processes (all members of the node's pid namespace)."""
    from kato.sandbox import host, model
    from kato.sandbox import node as nodes

    sandbox = model.require(NAME)
    result = []
    for n in sandbox.nodes:
        init = nodes.runtime(sandbox, n).init
        members = host.pid_namespace_members(init) if init else []
        result.append(sum(kib(p, field) for p in members) / 1024)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    require_root("sandbox")
    kato("sandbox", "up", "--name", NAME, "--nodes", "1")  # builds the image once if needed
    rows = []
    medians = {}
    for nodes in (3, 10):
        times = [timed_up(nodes) for _ in range(args.runs)]
        medians[nodes] = statistics.median(times)
        rows.append(
            (
                f"up, {nodes} nodes, cached image",
                f"{medians[nodes]:.2f} s",
                f"{medians[nodes] / medians[3]:.2f}x",
            )
        )
    time.sleep(10)  # let the 10 nodes settle
    memory = node_memory_mib("Pss")
    rows.append(
        ("memory per idle node (PSS, median of 10)", f"{statistics.median(memory):.1f} MiB", "-")
    )
    rows.append(
        (
            "memory per idle node (RSS sum, median of 10)",
            f"{statistics.median(node_memory_mib('Rss')):.1f} MiB",
            "-",
        )
    )
    down_started = time.monotonic()
    kato("sandbox", "down", "--name", NAME)
    rows.append(("down, 10 nodes", f"{time.monotonic() - down_started:.2f} s", "-"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'median':>10}  vs up 3 nodes")
    for label, value, ratio in rows:
        print(f"{label:<{width}}  {value:>10}  {ratio}")
    print(json.dumps({"up_s": medians, "node_pss_mib": memory}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
