"""Benchmark upgrades under load: a bounded load generator sends steady requests through the
sandbox's haproxy to the sample app while kato upgrades, and counts the failures.

Measured in one run, on a 3-node sandbox named PREFIX + "bench" (KATO_TEST_PREFIX, default
kato), brought up and removed here: a baseline with no upgrade; `kato upgrade prep` +
`takeover` 1.0.0 -> 1.2.0 (target: 0 failed requests out of >= 5,000 at >= 100/s);
`kato upgrade rollback --yes` back to 1.0.0 (in reverse order, in place); `kato upgrade
in-place 1.2.0` (its measured downtime and the failed requests). The load generator only
talks to the sandbox's own addresses, sends a fixed number of requests and stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench_common import KATO, SANDBOX_HOME, sandbox, sandbox_name

NAME = sandbox_name("bench")
HOME = SANDBOX_HOME / NAME
SANDBOX_NET = ipaddress.ip_network("198.18.0.0/15")  # the range kato sandbox uses
PORT = 8080
WORKERS = 32


@dataclass
class Load:
    """Fixed count, fixed rate, against one sandbox address; stops by itself."""

    address: str
    count: int
    rate: float
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if ipaddress.ip_address(self.address) not in SANDBOX_NET:
            raise SystemExit(f"{self.address} is not a sandbox address: refusing to load it")

    def one(self) -> None:
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(self.address, PORT, timeout=5)
            conn.request("GET", "/", headers={"Connection": "close"})
            reply = conn.getresponse()
            reply.read()
            conn.close()
            problem = None if reply.status == 200 else f"HTTP {reply.status}"
        except OSError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        with self.lock:
            if problem:
                self.failures.append(problem)
            else:
                self.latencies.append(time.perf_counter() - started)

    def run(self) -> float:
        """Send every request at its time; the seconds it took."""
        begun = time.monotonic()
        deadline = begun + self.count / self.rate + 60

        def worker(index: int) -> None:
            for i in range(index, self.count, WORKERS):
                wait = begun + i / self.rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if time.monotonic() > deadline:
                    with self.lock:
                        self.failures.append("not sent before the deadline")
                    continue
                self.one()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - begun


def kato(*args: str) -> subprocess.CompletedProcess[str]:
    argv = (*KATO, "--cluster", str(HOME / "cluster.yaml"), *args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=1800)


def under_load(address: str, count: int, rate: float, *commands: tuple[str, ...]) -> dict[str, Any]:
    """Run the commands one after the other while `count` requests go at `rate`."""
    load = Load(address, count, rate)
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(load_seconds=load.run()))
    thread.start()
    time.sleep(2)  # the load is steady before the first command
    timings = []
    for command in commands:
        started = time.monotonic()
        done = kato(*command)
        timings.append(time.monotonic() - started)
        if done.returncode != 0:
            result["error"] = f"kato {' '.join(command)} exited {done.returncode}: {done.stderr}"
            break
        result.setdefault("outputs", []).append(done.stdout.strip())
    thread.join()
    result.update(
        commands=timings,
        failures=len(load.failures),
        kinds=sorted(set(load.failures))[:5],
        sent=count,
        rate=count / result["load_seconds"],
        latency=statistics.median(load.latencies) if load.latencies else float("nan"),
        outlasted=sum(timings) + 2 > result["load_seconds"],
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rate", type=float, default=120.0)
    args = parser.parse_args()
    load_before = os.getloadavg()
    backups: tuple[str, ...] = ()
    try:
        with sandbox(NAME, 3) as status:
            core = next(n["address"] for n in status["nodes"] if n["name"] == "node1")
            small = max(500, args.requests // 10)
            backups = ("--backup-dir", tempfile.mkdtemp(prefix="kato-bench-upgrade-"))
            rows = [("baseline, no upgrade", under_load(core, small, args.rate))]
            rows.append(
                (
                    "prep + takeover 1.0.0 -> 1.2.0",
                    under_load(
                        core,
                        args.requests,
                        args.rate,
                        ("upgrade", "prep", "1.2.0", *backups),
                        ("upgrade", "takeover", "1.2.0"),
                    ),
                )
            )
            rows.append(
                (
                    "rollback --yes 1.2.0 -> 1.0.0",
                    under_load(core, small * 5, args.rate, ("upgrade", "rollback", "--yes")),
                )
            )
            rows.append(
                (
                    "in-place 1.0.0 -> 1.2.0",
                    under_load(
                        core, small * 5, args.rate, ("upgrade", "in-place", "1.2.0", *backups)
                    ),
                )
            )
    finally:
        if backups:
            shutil.rmtree(backups[1], ignore_errors=True)
    base = rows[0][1]["latency"]
    print(f"upgrades under load through haproxy ({core}:{PORT}), 3-node sandbox")
    averages = " / ".join(f"{a:.1f}" for a in (*load_before, *os.getloadavg()))
    print(f"load average (1, 5, 15 min) before / after: {averages}")
    print(
        f"{'run':34} {'requests':>8} {'req/s':>6} {'failed':>6} {'median latency':>15} "
        f"{'ratio':>6}  kato command seconds"
    )
    for label, r in rows:
        commands = ", ".join(f"{s:.1f}" for s in r["commands"]) or "-"
        print(
            f"{label:34} {r['sent']:>8} {r['rate']:>6.0f} {r['failures']:>6} "
            f"{r['latency'] * 1000:>12.1f} ms {r['latency'] / base:>5.2f}x  {commands}"
        )
        for output in r.get("outputs", []):
            print(f"    {output.splitlines()[-1] if output else ''}")
        if r["kinds"]:
            print(f"    failures: {'; '.join(r['kinds'])}")
        if r.get("outlasted"):
            print("    note: the commands outlasted the load: raise --requests")
        if r.get("error"):
            print(f"    {r['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
