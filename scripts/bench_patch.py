"""Benchmark `kato patch install`: one patch on 1 node vs on every router of a 10-node
cluster (9 routers), without restarts (they go wide) and with them (the router restarts roll,
one node at a time), the time of its --dry-run, and the routers' own restart-to-healthy times.
Medians of --runs; each install is reverted before the next run. Brings up (and removes) a
10-node sandbox named kpbench (KATO_TEST_PREFIX + "pbench") with the platform installed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections.abc import Callable

import bench_common
from bench_common import SANDBOX_HOME, median_time, sandbox, sandbox_name

NAME = sandbox_name("pbench", default_prefix="k")
HOME = SANDBOX_HOME / NAME
PATCH = "router-nosniff"


def kato(*args: str) -> None:
    bench_common.kato("--cluster", str(HOME / "cluster.yaml"), *args)


def measure(runs: int) -> list[tuple[str, float, str]]:
    one, every = ("--node", "node2"), ()
    no_restart = ("--no-restart",)

    def install(nodes: tuple[str, ...], *extra: str) -> Callable[[], None]:
        return lambda: kato("patch", "install", PATCH, *nodes, *extra)

    def revert(*extra: str) -> Callable[[], None]:
        return lambda: kato("patch", "revert", PATCH, *extra)

    rows = []
    a = median_time(install(one, *no_restart), runs, revert("--no-restart"))
    b = median_time(install(every, *no_restart), runs, revert("--no-restart"))
    rows += [
        ("install --no-restart, 1 node", a, "1.00x"),
        ("install --no-restart, 9 nodes", b, f"{b / a:.2f}x vs 1 node (target 1.5x)"),
    ]
    c = median_time(install(one), runs, revert("--no-restart"))
    d = median_time(install(every), runs, revert("--no-restart"))
    rows += [
        ("install with restarts, 1 node", c, "1.00x"),
        ("install with restarts, 9 nodes", d, f"{d / c:.2f}x vs 1 node (rolling restarts)"),
    ]
    e = median_time(install(every, "--dry-run"), runs)
    rows.append(("install --dry-run, 9 nodes", e, f"{e / b:.2f}x of the real install"))
    restarts = statistics.median(sum(restart_to_healthy(n) for n in ROUTERS) for _ in range(runs))
    rows += [
        ("sum of 9 routers' restart-to-healthy", restarts, "measured on the nodes"),
        (
            "restarts' share (9 nodes, with - without)",
            d - b,
            f"{(d - b) / restarts:.2f}x the restart-to-healthy sum (target 1.2x)",
        ),
    ]
    return rows


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
    args = parser.parse_args()
    with sandbox(NAME, 10):
        rows = measure(args.runs)
    print(f"patch {PATCH} on a 10-node sandbox, medians of {args.runs} runs")
    print(f"{'measure':38} {'median':>9}  ratio")
    for label, seconds, ratio in rows:
        print(f"{label:38} {seconds:8.3f}s  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
