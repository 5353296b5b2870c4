"""Benchmark the fixed cost of a kato command: what it pays whatever the data's size (start-up,
imports, connections, preparation, lock and journal).

Brings up (and removes) the 3-node sandbox KATO_TEST_PREFIX + "f1" and times, --runs times
each, interleaved so both see the same load: `kato --version`, `kato data export --role
filesystem --dry-run` (start-up and preparation only), a real `kato data export --role
filesystem` of the sandbox's small droplets dir (so nearly all of it is fixed cost) and its
`kato data import`. The baseline is `ssh node1 true` with OpenSSH (one connection and one
command), measured in the same run. With --against DIR, the same commands also run from the
kato checkout in DIR (PYTHONPATH=DIR), e.g. a clone of main, for a side-by-side in one run.
Prints medians, their ratio to the baseline and the 1-minute load average. Targets only the
sandbox's own addresses; every run is bounded by kato's own timeouts."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import KATO, Nodes, sandbox, sandbox_name

HERE = str(Path(__file__).resolve().parent.parent)


def timed(argv: tuple[str, ...], checkout: str) -> float:
    env = {**os.environ, "PYTHONPATH": checkout}
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, cwd=checkout)  # stdout: archive
    took = time.perf_counter() - started
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {said}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--against", help="Another kato checkout to time side by side.")
    args = parser.parse_args()
    checkouts = {"this": HERE, **({"against": args.against} if args.against else {})}
    with sandbox(sandbox_name("f1"), 3) as info, tempfile.TemporaryDirectory() as work:
        nodes = Nodes(info)
        base = ("--cluster", nodes.cluster)
        archive = str(Path(work) / "small.tar.zst")
        subprocess.run((*KATO, *base, "data", "export", archive, "--role", "filesystem"),
                       check=True, capture_output=True)  # fmt: skip
        commands = {
            "kato --version": (*KATO, "--version"),
            "export --dry-run": (*KATO, *base, "data", "export", work, "--role", "filesystem",
                                 "--dry-run"),
            "export": (*KATO, *base, "data", "export", "-", "--role", "filesystem"),  # captured
            "import": (*KATO, *base, "data", "import", archive),
        }  # fmt: skip
        ssh = ("ssh", "-F", nodes.ssh_config, "-o", "BatchMode=yes", "node1", "true")
        times: dict[tuple[str, str], list[float]] = {}
        loads = []
        for _ in range(args.runs):
            loads.append(os.getloadavg()[0])
            times.setdefault(("baseline", "ssh node1 true"), []).append(timed(ssh, HERE))
            for label, checkout in checkouts.items():
                for name, argv in commands.items():
                    times.setdefault((label, name), []).append(timed(argv, checkout))
                timed((*KATO, *base, "data", "cleanup"), HERE)  # what the import kept
        baseline = statistics.median(times[("baseline", "ssh node1 true")])
        print(f"medians of {args.runs} runs; load {min(loads):.1f}-{max(loads):.1f}")
        print(f"{'checkout':10} {'command':18} {'median s':>9} {'x ssh':>7}")
        for (label, name), values in times.items():
            shown = args.against if label == "against" else label
            med = statistics.median(values)
            print(f"{shown[-10:]:10} {name:18} {med:9.3f} {med / baseline:7.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
