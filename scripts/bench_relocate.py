"""Benchmark `kato relocate` against `rsync -aHAX` of the same data on the node, in the same
run, and the roles' downtime (stopped -> healthy) per data size.

Brings up (and removes) the 1-node sandbox PREFIXbrel (PREFIX: $KATO_TEST_PREFIX, else kato)
with a btrfs disk at /mnt/bench, and for each --sizes entry fills the filesystem role's
droplets with that much data: half incompressible (/dev/urandom), half compressible (`seq`
output), in eight files. Then, --runs times, from wherever the droplets live now:

1. baseline: `rsync -aHAX --numeric-ids --sparse SRC/ /mnt/bench/base/` on the node (timed
   over ssh, then removed);
2. `kato relocate droplets /mnt/bench/run-N` (total wall time; its --json gives the downtime,
   stopped -> healthy, and the final delta's share of it), then `kato relocate cleanup`.

Prints medians and kato/baseline ratios. The targets: total <= 1.2x the baseline at 2 GB;
downtime <= 3 s + the final delta, not growing with the size.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field

from bench_common import FILL, Nodes, kato, sandbox, sandbox_name

NAME = sandbox_name("brel")
UNITS = {"M": 10**6, "G": 10**9}
RSYNC = "rsync -aHAX --numeric-ids --sparse {src}/ /mnt/bench/base/ && sync"


@dataclass
class Figures:
    baseline: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    downtime: list[float] = field(default_factory=list)
    delta: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average, each run's start


class Node(Nodes):
    def droplets(self) -> str:
        status = json.loads(self.on("relocate", "status", "--json").stdout)
        return str(next(d["path"] for d in status["dirs"] if d["name"] == "droplets"))


def measure(node: Node, size: int, runs: int, counter: list[int]) -> Figures:
    found = Figures()
    node.ssh(FILL, node.droplets(), str(size))
    for _ in range(runs):
        src = node.droplets()
        found.load.append(os.getloadavg()[0])
        started = time.monotonic()
        node.ssh(RSYNC.format(src=shlex.quote(src)))
        found.baseline.append(time.monotonic() - started)
        node.ssh("rm -rf /mnt/bench/base && btrfs filesystem sync /mnt/bench")
        counter[0] += 1
        started = time.monotonic()
        done = node.on("relocate", "droplets", f"/mnt/bench/run-{counter[0]}", "--json")
        found.total.append(time.monotonic() - started)
        run = json.loads(done.stdout)["runs"][0]
        found.downtime.append(run["downtime"])
        found.delta.append(run["final_delta"])
        node.on("relocate", "cleanup")
        node.ssh("btrfs filesystem sync /mnt/bench")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="200M,2G")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up")
    args = parser.parse_args()
    sizes = [(s, int(s[:-1]) * UNITS[s[-1]]) for s in args.sizes.split(",")]
    with sandbox(NAME, 1, keep=args.keep) as info:
        node, counter = Node(info), [0]
        biggest = max(n for _, n in sizes)
        disk = f"{max(2, (3 * biggest) // 10**9 + 2)}G"
        kato("sandbox", "disk", "node1", "--name", NAME, "--fs", "btrfs", "--size", disk,
             "--at", "/mnt/bench")  # fmt: skip
        rows = [(label, measure(node, n, args.runs, counter)) for label, n in sizes]
    print(f"kato relocate, {args.runs} runs per size, medians (this machine: "
          f"{os.cpu_count()} cores, shared)")  # fmt: skip
    print("| data | rsync -aHAX | kato relocate | ratio | downtime | of it final delta "
          "| downtime - delta | load |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for label, f in rows:
        base, total = statistics.median(f.baseline), statistics.median(f.total)
        down, delta = statistics.median(f.downtime), statistics.median(f.delta)
        print(f"| {label} | {base:.2f} s | {total:.2f} s | {total / base:.2f}x | {down:.2f} s "
              f"| {delta:.2f} s | {down - delta:.2f} s "
              f"| {min(f.load):.1f}-{max(f.load):.1f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
