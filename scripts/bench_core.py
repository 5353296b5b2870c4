"""Benchmark the core: `kato status` on 1 vs 10 nodes and against pyinfra, start-up time,
the cost of one more command on a reused connection, and fan-out to 30 nodes against a bash
loop of `ssh NODE CMD &` + `wait`. Medians of --runs; baselines are measured in the same run.
Brings up (and removes) a 30-node bare sandbox named katobench (KATO_TEST_PREFIX + "bench").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench_common import KATO, SANDBOX_HOME, median_time, require_root, sandbox, sandbox_name

NAME = sandbox_name("bench")
HOME = SANDBOX_HOME / NAME
UNIT = "systemd-journald.service"  # active on every node, bare or not


def sh(*argv: str, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> str:
    """Run a timed command; one that fails ends the benchmark with its own words (a failing
    baseline or kato run would be timed at the speed of its error message)."""
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode not in ok:
        said = f"{done.stdout}{done.stderr}".strip()[-2000:]
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{said}")
    return done.stdout


def kato_status(nodes: list[str]) -> None:
    args = [a for n in nodes for a in ("--node", n)]
    # the bare nodes run no roles, so status reports them failing (exit 1): a full answer
    shown = sh(*KATO, "--cluster", str(HOME / "cluster.yaml"), "status", *args, ok=(0, 1))
    if "lock:" not in shown or any(f"{n} " not in shown for n in nodes):
        raise SystemExit(f"kato status did not answer for every node:\n{shown}")


def pyinfra_exec(nodes: list[str], addresses: dict[str, str]) -> Callable[[], None] | None:
    pyinfra = Path(sys.executable).with_name("pyinfra")
    if not pyinfra.exists():
        done = subprocess.run(
            (sys.executable, "-m", "pip", "install", "-q", "pyinfra"), capture_output=True
        )
        if done.returncode != 0 or not pyinfra.exists():
            return None
    inventory = HOME / "bench_inventory.py"
    hosts = ", ".join(
        f"('{addresses[n]}', {{'ssh_user': 'root', 'ssh_key': '{HOME / 'id_ed25519'}', "
        f"'ssh_known_hosts_file': '{HOME / 'known_hosts'}', "
        f"'ssh_strict_host_key_checking': 'yes'}})"
        for n in nodes
    )
    inventory.write_text(f"hosts = [{hosts}]\n")

    def run() -> None:
        # one command that succeeds on a bare node (pyinfra exits 1 when it fails anywhere)
        sh(str(pyinfra), "-y", str(inventory), "exec", "--", "systemctl", "is-active", UNIT)

    return run


def reused_connection_ms(runs: int) -> float:
    from kato import config
    from kato.connect import connections

    cluster = config.load(str(HOME / "cluster.yaml"), env={})
    with connections(cluster) as conns:
        transport = conns.get("node1")
        transport.run(("true",))
        return 1000 * median_time(lambda: transport.run(("true",)), runs)


def fan_out_seconds(nodes: list[str], runs: int) -> float:
    args = [a for n in nodes for a in ("--node", n)]
    return median_time(
        lambda: sh(
            *KATO,
            "--cluster",
            str(HOME / "cluster.yaml"),
            "run",
            "--parallel",
            "30",
            *args,
            "--",
            "true",
            env={"KATO_LOCK_TTL": "60"},
        ),
        runs,
    )


def bash_loop_seconds(nodes: list[str], runs: int) -> float:
    config = HOME / "ssh_config"
    loop = " ".join(f"ssh -F {config} -o BatchMode=yes {n} true &" for n in nodes) + " wait"
    return median_time(lambda: sh("bash", "-c", loop), runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    require_root("core")
    with sandbox(NAME, 30, "--bare"):
        return report(args.runs)


def report(runs: int) -> int:
    import json

    status = json.loads(
        subprocess.run(
            (*KATO, "sandbox", "status", "--name", NAME, "--json"),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    addresses = {n["name"]: n["address"] for n in status["nodes"]}
    every = list(addresses)
    rows: list[tuple[str, float, str, str]] = []
    one = median_time(lambda: kato_status(every[:1]), runs)
    ten = median_time(lambda: kato_status(every[:10]), runs)
    rows += [
        ("kato status, 1 node", one, "s", "1.00x"),
        ("kato status, 10 nodes", ten, "s", f"{ten / one:.2f}x vs 1 node"),
    ]
    pyinfra = pyinfra_exec(every[:10], addresses)
    if pyinfra is not None:
        theirs = median_time(pyinfra, runs)
        rows.append(("pyinfra exec, 10 nodes", theirs, "s", f"kato/pyinfra {ten / theirs:.2f}x"))
    bare = median_time(lambda: sh(sys.executable, "-c", "pass"), runs)
    helped = median_time(lambda: sh(*KATO, "--help"), runs)
    rows += [
        ("python -c pass (baseline)", bare, "s", "1.00x"),
        ("kato --help", helped, "s", f"{helped / bare:.2f}x vs python"),
    ]
    rows.append(("one more command, reused connection", reused_connection_ms(50), "ms", "-"))
    fan1 = fan_out_seconds(every[:1], runs)
    fan30 = fan_out_seconds(every, runs)
    loop30 = bash_loop_seconds(every, runs)
    rows += [
        ("kato run, 1 node", fan1, "s", "1.00x"),
        ("kato run, 30 nodes", fan30, "s", f"{fan30 / fan1:.2f}x vs 1 node"),
        ("bash loop of ssh &, 30 nodes", loop30, "s", f"kato/bash {fan30 / loop30:.2f}x"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'median':>10}  ratio")
    for label, value, unit, ratio in rows:
        print(f"{label:<{width}}  {value:>8.3f} {unit:<2}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
