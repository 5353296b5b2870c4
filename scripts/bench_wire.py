"""Benchmark the CPU that bytes cost in kato's SSH transport alone: one channel, no archive,
no hashing, no compression.

Brings up (and removes) the 1-node sandbox KATO_TEST_PREFIX + "w1" (kw1 without it), writes a
SIZE file on node1 (half /dev/urandom, half `seq` output) and, --runs times, interleaved:

- out: `SshTransport.stream_out(cat FILE)` into a sink that only counts (what an export's
  stream does before the archive);
- in: `SshTransport.stream_in` of SIZE bytes from memory into `cat > /dev/null` (what an
  import's stream does);

each in a fresh process of the checkout (this one, and with --against DIR that one), connected
first and measured from the channel's opening to its end: the process's CPU-seconds
(getrusage, every thread: paramiko's transport thread and the reading one), node1's (its
cgroup's cpu.stat: sshd and cat), the SSH data packets kato received (out) and the reads the
sink saw. --window and --packet set the window and the largest packet kato's channels
advertise (paramiko's Transport.default_window_size / default_max_packet_size), to see what
OpenSSH's sshd then sends. Prints medians, per MB (10^6 bytes) and the 1-minute load average.
The packet count wraps a private paramiko table (this script only, never kato)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_common import Nodes, require_root, sandbox, sandbox_name

NAME = sandbox_name("w1", default_prefix="k")
HERE = str(Path(__file__).resolve().parent.parent)
FILE = "/root/kato-bench-wire"
FILL = """
set -eu
half=$(($2 / 2))
head -c "$half" /dev/urandom >"$1"
seq 1 100000000000 | head -c "$half" >>"$1" || true
stat -c %s "$1"
"""
CGROUP = Path("/sys/fs/cgroup")

# Runs in the checkout's own interpreter (PYTHONPATH=checkout): prints one JSON line.
CHILD = r"""
import io, json, resource, sys, time
import yaml
import paramiko
from paramiko.common import MSG_CHANNEL_DATA
from kato.transport.base import SshOptions
from kato.transport.ssh import SshTransport

cluster, direction, path, size, window, packet = sys.argv[1:7]
size, window, packet = int(size), int(window), int(packet)
doc = yaml.safe_load(open(cluster))
ssh, node = doc["ssh"], doc["nodes"][0]
options = SshOptions(user=ssh["user"], identity_file=ssh["identity_file"],
                     known_hosts=ssh["known_hosts"], connect_timeout=10, auth_timeout=10,
                     command_timeout=600)
transport = SshTransport(node["name"], node["address"], node.get("port", 22), options)
inner = transport._client.get_transport()
if window:
    inner.default_window_size = window
if packet:
    inner.default_max_packet_size = packet
packets = [0]
table = paramiko.Transport._channel_handler_table
feed = table[MSG_CHANNEL_DATA]
def counted(channel, message):
    packets[0] += 1
    return feed(channel, message)
table[MSG_CHANNEL_DATA] = counted

class Sink:
    size = reads = 0
    def write(self, data):
        self.size += len(data)
        self.reads += 1
        return len(data)

sink = Sink()
source = io.BytesIO(bytes(size)) if direction == "in" else None
before = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
if direction == "out":
    result = transport.stream_out(["cat", "--", path], sink)
    moved = sink.size
else:
    result = transport.stream_in(["sh", "-c", "cat > /dev/null"], source)
    moved = size
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
transport.close()
if result.status != 0 or moved != size:
    sys.exit(f"{direction}: status {result.status}, {moved} of {size} bytes: {result.stderr}")
cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
print(json.dumps({"cpu": cpu, "seconds": seconds, "packets": packets[0], "reads": sink.reads}))
"""


def node_cpu() -> float:
    name = f"kato-sandbox/{NAME}-node1/cpu.stat"
    for stat in (CGROUP / name, CGROUP / "unified" / name):
        if stat.exists():
            for line in stat.read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
    return 0.0


def once(
    checkout: str, cluster: str, direction: str, size: int, args: argparse.Namespace
) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": checkout}
    argv = (sys.executable, "-c", CHILD, cluster, direction, FILE, str(size),
            str(args.window), str(args.packet))  # fmt: skip
    before = node_cpu()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=checkout, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{direction} in {checkout}: {done.stderr.strip()}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["node"] = node_cpu() - before
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--size", type=int, default=200_000_000, help="bytes (default 200 MB)")
    parser.add_argument("--window", type=int, default=0, help="bytes (default: paramiko's)")
    parser.add_argument("--packet", type=int, default=0, help="bytes (default: paramiko's)")
    parser.add_argument("--against", help="Another kato checkout, measured in the same runs.")
    args = parser.parse_args()
    require_root("wire")
    checkouts = {"this": HERE, **({"against": args.against} if args.against else {})}
    with sandbox(NAME, 1) as info:
        nodes = Nodes(info)
        size = int(nodes.ssh(FILL, FILE, str(args.size)).strip())
        figures: dict[tuple[str, str], list[dict[str, float]]] = {}
        load = []
        for _ in range(args.runs):
            load.append(os.getloadavg()[0])
            for direction in ("out", "in"):
                for name, checkout in checkouts.items():
                    got = once(checkout, nodes.cluster, direction, size, args)
                    figures.setdefault((name, direction), []).append(got)
    mb = size / 1e6
    med = statistics.median
    print(f"kato's SSH transport, {mb:.0f} MB through one channel, medians of {args.runs} runs "
          f"(load average {min(load):.1f}-{max(load):.1f}); window {args.window or 'default'}, "
          f"packet {args.packet or 'default'}")  # fmt: skip
    for (name, direction), runs in figures.items():
        cpu, node = med(r["cpu"] for r in runs), med(r["node"] for r in runs)
        line = (f"  {name:8} {direction:3}: kato {cpu:.3f} CPU-s ({cpu / mb * 1000:.2f} ms/MB), "
                f"node1 {node:.3f} CPU-s, {med(r['seconds'] for r in runs):.2f} s")  # fmt: skip
        if direction == "out":
            packets = med(r["packets"] for r in runs)
            line += (f", {packets:.0f} packets ({size / max(packets, 1) / 1024:.1f} KiB each), "
                     f"{med(r['reads'] for r in runs):.0f} reads")  # fmt: skip
        print(line)
    print(json.dumps({f"{n} {d}": r for (n, d), r in figures.items()}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
