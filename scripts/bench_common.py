"""What the benchmarks share: their sandbox's name, bringing it up and down, running kato and
shell scripts on its nodes, timing medians, and filling a data dir with a known mix of data.

Kept in one place so every benchmark names its sandbox by KATO_TEST_PREFIX (never another
checkout's machines) and removes it however the run ends.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

KATO = (sys.executable, "-m", "kato")
SANDBOX_HOME = Path(os.environ.get("KATO_SANDBOX_HOME", "/var/lib/kato-sandbox"))
# DIR/bench filled with SIZE bytes in eight files: half incompressible (/dev/urandom), half
# compressible (`seq` output); prints DIR's size in bytes. Arguments: DIR SIZE.
FILL = """
set -eu
d="$1/bench"; half=$(($2 / 2)); per=$((half / 4))
rm -rf "$d"; mkdir -p "$d"
for i in 1 2 3 4; do
    head -c "$per" /dev/urandom >"$d/random-$i.bin"
    seq 1 100000000000 | head -c "$per" >"$d/text-$i.log" || true
done
chown -R kato:kato "$d"; sync
du -sb "$1" | cut -f1
"""


def sandbox_name(word: str, default_prefix: str = "kato") -> str:
    """KATO_TEST_PREFIX + word: each checkout benchmarks on its own sandboxes only."""
    return os.environ.get("KATO_TEST_PREFIX", default_prefix) + word


def require_root(bench: str) -> None:
    """The sandbox needs root: say so (exit 1) before anything starts."""
    if os.geteuid() != 0:
        raise SystemExit(f"scripts/bench {bench} needs root")


def kato(*args: str, timeout: float = 7200, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run kato; with check, a failure ends the benchmark with kato's own words."""
    done = subprocess.run((*KATO, *args), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        said = f"{done.stdout}{done.stderr}".strip()
        raise SystemExit(f"kato {' '.join(args)} exited {done.returncode}:\n{said}")
    return done


@contextmanager
def sandbox(name: str, nodes: int, *options: str, keep: bool = False) -> Iterator[dict[str, Any]]:
    """A fresh sandbox NAME (any old one is removed first): its `sandbox up --json` document.

    Removed when the block ends, however it ends, unless keep.
    """
    kato("sandbox", "down", "--name", name, check=False)
    up = kato("sandbox", "up", "--name", name, "--nodes", str(nodes), "--json", *options)
    try:
        yield json.loads(up.stdout)
    finally:
        if not keep:
            kato("sandbox", "down", "--name", name, check=False)


class Nodes:
    """A sandbox's nodes, reached the way an operator would: its cluster file and ssh config."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.cluster: str = info["cluster_file"]
        self.ssh_config: str = info["ssh_config"]

    def ssh(self, script: str, *args: str, node: str = "node1") -> str:
        """Run a shell script with arguments on a node; its output. A failure raises."""
        line = "sh -c " + shlex.quote(script) + " sh " + " ".join(map(shlex.quote, args))
        argv = ("ssh", "-F", self.ssh_config, "-o", "BatchMode=yes", node, line)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=7200)
        if done.returncode != 0:
            head = script.strip()[:60]
            raise RuntimeError(f"{node}: {head}... exited {done.returncode}: {done.stderr}")
        return done.stdout

    def on(self, *args: str, cluster: str | None = None) -> subprocess.CompletedProcess[str]:
        """kato against this sandbox's cluster file (or another one naming its nodes)."""
        return kato("--cluster", cluster or self.cluster, *args)


def median_time(
    action: Callable[[], object], runs: int, undo: Callable[[], object] | None = None
) -> float:
    """The median seconds of `runs` runs of action; undo (not timed) after each."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
        if undo is not None:
            undo()
    return statistics.median(times)
