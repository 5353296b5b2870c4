"""Benchmark `kato patch install`: one patch on 1 node vs on every router of a 10-node
cluster (9 routers), without restarts (they go wide) and with them (the router restarts roll,
one node at a time), the time of its --dry-run, and the routers' own restart-to-healthy times.
Medians of --runs; each install is reverted before the next run. Brings up (and removes) a
10-node sandbox named kpbench (KATO_TEST_PREFIX + "pbench") with the platform installed.
With --against DIR (another kato checkout, e.g. main before a change), every install is timed
with that checkout's kato right after this one's, run by run on the same sandbox, and its
table is printed beside this one's: two versions compared under the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import bench_common
from bench_common import KATO, SANDBOX_HOME, sandbox, sandbox_name

NAME = sandbox_name("pbench", default_prefix="k")
HOME = SANDBOX_HOME / NAME
PATCH = "router-nosniff"


def kato(checkout: Path | None, *args: str) -> None:
    """This checkout's kato (None), or another checkout's, run from its own tree."""
    if checkout is None:
        bench_common.kato("--cluster", str(HOME / "cluster.yaml"), *args)
        return
    done = subprocess.run(
        (*KATO, "--cluster", str(HOME / "cluster.yaml"), *args),
        capture_output=True,
        text=True,
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)},
    )
    if done.returncode != 0:
        raise SystemExit(
            f"{checkout}: kato {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
        )


def timed(checkouts: list[Path | None], runs: int, *args: str, undo: bool = True) -> list[float]:
    """The median seconds of `kato ARGS` per checkout, the checkouts taking turns run by run;
    after each, the patch is reverted (not timed) by the same checkout."""
    times: list[list[float]] = [[] for _ in checkouts]
    for _ in range(runs):
        for i, checkout in enumerate(checkouts):
            started = time.perf_counter()
            kato(checkout, *args)
            times[i].append(time.perf_counter() - started)
            if undo:
                kato(checkout, "patch", "revert", PATCH, "--no-restart")
    return [statistics.median(t) for t in times]


def measure(runs: int, checkouts: list[Path | None]) -> list[list[tuple[str, float, str]]]:
    """One table per checkout."""
    one, every = ("--node", "node2"), ()
    install = ("patch", "install", PATCH)
    a = timed(checkouts, runs, *install, *one, "--no-restart")
    b = timed(checkouts, runs, *install, *every, "--no-restart")
    c = timed(checkouts, runs, *install, *one)
    d = timed(checkouts, runs, *install, *every)
    e = timed(checkouts, runs, *install, *every, "--dry-run", undo=False)
    restarts = statistics.median(sum(restart_to_healthy(n) for n in ROUTERS) for _ in range(runs))
    return [
        [
            ("install --no-restart, 1 node", a[i], "1.00x"),
            ("install --no-restart, 9 nodes", b[i], f"{b[i] / a[i]:.2f}x vs 1 node (target 1.5x)"),
            ("install with restarts, 1 node", c[i], "1.00x"),
            ("install with restarts, 9 nodes", d[i], f"{d[i] / c[i]:.2f}x vs 1 node (rolling)"),
            ("install --dry-run, 9 nodes", e[i], f"{e[i] / b[i]:.2f}x of the real install"),
            ("sum of 9 routers' restart-to-healthy", restarts, "measured on the nodes"),
            (
                "restarts' share (9 nodes, with - without)",
                d[i] - b[i],
                f"{(d[i] - b[i]) / restarts:.2f}x the restart-to-healthy sum (target 1.2x)",
            ),
        ]
        for i in range(len(checkouts))
    ]


ROUTERS = [f"node{i}" for i in range(2, 11)]
# on the node: restart the router, then poll its health URL; nanoseconds from start to healthy
RESTART = (
    "s=$(date +%s%N); systemctl restart kato-router.service; "
    "until curl -fsS -o /dev/null -m 2 http://127.0.0.1:80/healthz; do sleep 0.02; done; "
    "echo $(( $(date +%s%N) - s ))"
)


def restart_to_healthy(node: str) -> float:
    done = subprocess.run(
        ("ssh", "-F", str(HOME / "ssh_config"), "-o", "BatchMode=yes", node, RESTART),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.split()[-1]) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another kato checkout, timed alongside")
    args = parser.parse_args()
    checkouts: list[Path | None] = [None] + ([args.against.resolve()] if args.against else [])
    with sandbox(NAME, 10):
        load = os.getloadavg()[0]
        tables = measure(args.runs, checkouts)
        load_after = os.getloadavg()[0]
    for checkout, rows in zip(checkouts, tables, strict=True):
        print(f"patch {PATCH} on a 10-node sandbox, medians of {args.runs} runs")
        print(f"kato: {checkout or 'this checkout'}; load average {load:.1f}-{load_after:.1f}")
        print(f"{'measure':42} {'median':>9}  ratio")
        for label, seconds, ratio in rows:
            print(f"{label:42} {seconds:8.3f}s  {ratio}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
