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
import subprocess
import sys
import time
from dataclasses import dataclass, field

PREFIX = os.environ.get("KATO_TEST_PREFIX", "kato")
NAME = f"{PREFIX}brel"
KATO = (sys.executable, "-m", "kato")
DROPLETS = "/var/lib/kato/data/droplets"
UNITS = {"M": 10**6, "G": 10**9}
FILL = """
set -eu
d="$1/bench"; half=$(($2 / 2)); per=$((half / 4))
rm -rf "$d"; mkdir -p "$d"
for i in 1 2 3 4; do
    head -c "$per" /dev/urandom >"$d/random-$i.bin"
    seq 1 100000000000 | head -c "$per" >"$d/text-$i.log" || true
done
chown -R kato:kato "$d"; sync
"""
RSYNC = "rsync -aHAX --numeric-ids --sparse {src}/ /mnt/bench/base/ && sync"


@dataclass
class Figures:
    baseline: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    downtime: list[float] = field(default_factory=list)
    delta: list[float] = field(default_factory=list)


def kato(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run((*KATO, *args), capture_output=True, text=True, timeout=7200)
    if done.returncode != 0:
        raise SystemExit(f"kato {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


class Node:
    def __init__(self, info: dict[str, str]) -> None:
        self.cluster, self.ssh_config = info["cluster_file"], info["ssh_config"]

    def sh(self, script: str, *args: str) -> str:
        line = "sh -c " + shlex.quote(script) + " sh " + " ".join(map(shlex.quote, args))
        argv = ("ssh", "-F", self.ssh_config, "node1", line)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=7200)
        if done.returncode != 0:
            raise SystemExit(f"on node1: {script[:60]}... exited {done.returncode}: {done.stderr}")
        return done.stdout

    def on(self, *args: str) -> subprocess.CompletedProcess[str]:
        return kato("--cluster", self.cluster, *args)

    def droplets(self) -> str:
        status = json.loads(self.on("relocate", "status", "--json").stdout)
        return next(d["path"] for d in status["dirs"] if d["name"] == "droplets")


def measure(node: Node, size: int, runs: int, counter: list[int]) -> Figures:
    found = Figures()
    node.sh(FILL, node.droplets(), str(size))
    for _ in range(runs):
        src = node.droplets()
        started = time.monotonic()
        node.sh(RSYNC.format(src=shlex.quote(src)))
        found.baseline.append(time.monotonic() - started)
        node.sh("rm -rf /mnt/bench/base && btrfs filesystem sync /mnt/bench")
        counter[0] += 1
        started = time.monotonic()
        done = node.on("relocate", "droplets", f"/mnt/bench/run-{counter[0]}", "--json")
        found.total.append(time.monotonic() - started)
        run = json.loads(done.stdout)["runs"][0]
        found.downtime.append(run["downtime"])
        found.delta.append(run["final_delta"])
        node.on("relocate", "cleanup")
        node.sh("btrfs filesystem sync /mnt/bench")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="200M,2G")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up")
    args = parser.parse_args()
    sizes = [(s, int(s[:-1]) * UNITS[s[-1]]) for s in args.sizes.split(",")]
    kato("sandbox", "down", "--name", NAME)
    info = json.loads(kato("sandbox", "up", "--name", NAME, "--nodes", "1", "--json").stdout)
    node, counter = Node(info), [0]
    try:
        biggest = max(n for _, n in sizes)
        disk = f"{max(2, (3 * biggest) // 10**9 + 2)}G"
        kato("sandbox", "disk", "node1", "--name", NAME, "--fs", "btrfs", "--size", disk,
             "--at", "/mnt/bench")  # fmt: skip
        rows = [(label, measure(node, n, args.runs, counter)) for label, n in sizes]
    finally:
        if not args.keep:
            kato("sandbox", "down", "--name", NAME)
    print(f"kato relocate, {args.runs} runs per size, medians (this machine: "
          f"{os.cpu_count()} cores, shared)")  # fmt: skip
    print("| data | rsync -aHAX | kato relocate | ratio | downtime | of it final delta "
          "| downtime - delta |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, f in rows:
        base, total = statistics.median(f.baseline), statistics.median(f.total)
        down, delta = statistics.median(f.downtime), statistics.median(f.delta)
        print(f"| {label} | {base:.2f} s | {total:.2f} s | {total / base:.2f}x | {down:.2f} s "
              f"| {delta:.2f} s | {down - delta:.2f} s |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
