"""Benchmark `kato data export` and `kato data import` against the shell pipelines they
replace, on the same data in the same run, and kato's peak RSS per data size.

Brings up (and removes) the 3-node sandbox KATO_TEST_PREFIX + "b1" (kb1 without it) and, for
each --sizes entry, fills the filesystem role's data dir on node1 with that much data: half
incompressible (/dev/urandom), half compressible (`seq` output), in eight files. Then, --runs
times:

1. baseline export: `ssh node1 'tar -cf - -C DIR .' | zstd -1 -T0 -q > FILE`
2. `kato data export FILE --only filesystem` (includes kato's read-back verification, which
   overlaps the transfer), and `kato data verify FILE` timed on its own, against the same
   work in C by the tools (`zstd -d -c FILE | sha256sum`: decompression and one hash, no
   tar walk, no start-up)
3. baseline import: `zstd -d -c FILE | ssh node1 'tar -xf - -C DIR/.bench-restore'`
4. `kato data import FILE` (verify, stage, stop the role, swap, start it), then
   `kato data cleanup` (not timed)

Then, with --parallel SIZE, the same data dir on all three nodes (a copy of the cluster file
gives node2 and node3 the filesystem role's data dir too), SIZE on each, --runs times: the
baseline's `ssh node1 tar | zstd -1 -T0 > FILE` alone, then the three nodes' pipelines at once
(each to its own file, started together, waited together), then `kato data export --only
filesystem` of node1 alone and of the three nodes at once. Printed: each one's ratio of three
at once to alone, kato's three at once against the baseline's, and the CPU-seconds of one and
of three (the local process tree's from wait4 plus the three nodes' cgroups', sshd included),
with the floor those CPU-seconds set on this machine's cores: when three at once take about
their CPU-seconds / cores, the machine's CPU is the bound, not kato's waiting.
(--sizes none skips the single-node table.)

Prints medians, with the 1-minute load average seen at the start of the runs (the machine may
be shared); MB/s counts the data dir's bytes (10^6 bytes per MB), not the archive's.
Peak RSS is ru_maxrss of the kato process from wait4 (the largest of it and its children).
"exp CPU" and "imp CPU" are the CPU-seconds of one export and one import, kato's against the
baseline's: the local process tree's (wait4) plus node1's (its cgroup's cpu.stat). Unlike the
ratio of speeds they hardly move with the load of a shared machine. With --against DIR (another
kato checkout), that kato's export of the same data dir, and its verify and import of the same
archive, are timed right after this one's in each run (and with --parallel its exports of node1
alone and of the three nodes): a before/after interleaved on the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from bench_common import FILL, KATO, Nodes, require_root, sandbox, sandbox_name

NAME = sandbox_name("b1", default_prefix="k")
CGROUPS = Path("/sys/fs/cgroup")
# kato as installed: its modules compiled once (.pyc), not again at every run as a checkout
# with PYTHONDONTWRITEBYTECODE set would (0.3-0.5 s per command on this machine kind).
KATO_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
DATA_DIR = "/var/lib/kato/data/droplets"
RESTORE_DIR = f"{DATA_DIR}/.bench-restore"
UNITS = {"K": 10**3, "M": 10**6, "G": 10**9}


@dataclass
class Figures:
    base_export: list[float] = field(default_factory=list)
    kato_export: list[float] = field(default_factory=list)
    base_verify: list[float] = field(default_factory=list)  # zstd -d | sha256sum, seconds
    kato_verify: list[float] = field(default_factory=list)
    verify_rss: list[float] = field(default_factory=list)
    base_verify_cpu: list[float] = field(default_factory=list)
    kato_verify_cpu: list[float] = field(default_factory=list)
    export_rss: list[float] = field(default_factory=list)
    base_import: list[float] = field(default_factory=list)
    kato_import: list[float] = field(default_factory=list)
    import_rss: list[float] = field(default_factory=list)
    base_import_cpu: list[float] = field(default_factory=list)  # CPU-s of one import
    kato_import_cpu: list[float] = field(default_factory=list)
    other_export: list[float] = field(default_factory=list)  # --against's kato, same data
    other_export_cpu: list[float] = field(default_factory=list)
    other_import: list[float] = field(default_factory=list)  # --against's kato, same archive
    other_import_cpu: list[float] = field(default_factory=list)
    other_verify: list[float] = field(default_factory=list)  # --against's kato, same archive
    other_verify_cpu: list[float] = field(default_factory=list)
    base_cpu: list[float] = field(default_factory=list)  # CPU-s of one export, here + node1
    kato_cpu: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average at each run
    base_bytes: int = 0
    kato_bytes: int = 0


class Sandbox(Nodes):
    cpu = 0.0  # CPU-seconds, here and on the nodes counted, of the last command timed
    counted: tuple[str, ...] = ("node1",)  # the nodes whose CPU `cpu` includes

    def kato(
        self, *args: str, cluster: str | None = None, checkout: Path | None = None
    ) -> tuple[float, float]:
        """(seconds, peak RSS in MiB) of one kato command against the sandbox (the kato of
        `checkout` when given, else this one); its CPU in `self.cpu`."""
        env = KATO_ENV if checkout is None else {**KATO_ENV, "PYTHONPATH": str(checkout)}
        with tempfile.TemporaryFile() as out:
            started, node_cpu = time.monotonic(), nodes_cpu(self.counted)
            process = subprocess.Popen(
                (*KATO, "--cluster", cluster or self.cluster, *args),
                stdout=out,
                stderr=out,
                env=env,
                cwd=checkout,  # `python -m` puts the working directory first on sys.path
            )
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.monotonic() - started
            self.cpu = usage.ru_utime + usage.ru_stime + nodes_cpu(self.counted) - node_cpu
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode != 0:
                out.seek(0)
                detail = out.read().decode(errors="replace").strip()
                raise RuntimeError(f"kato {' '.join(args)} exited {process.returncode}: {detail}")
        return seconds, usage.ru_maxrss / 1024

    def pipeline(self, command: str) -> float:
        """Seconds of a shell pipeline; its CPU in `self.cpu`."""
        started, node_cpu = time.monotonic(), nodes_cpu(self.counted)
        process = subprocess.Popen(("bash", "-o", "pipefail", "-c", command))
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{command} exited {os.waitstatus_to_exitcode(status)}")
        self.cpu = usage.ru_utime + usage.ru_stime + nodes_cpu(self.counted) - node_cpu
        return time.monotonic() - started


def nodes_cpu(nodes: tuple[str, ...]) -> float:
    """The nodes' CPU-seconds so far (everything in each node, sshd included), from their
    cgroups (kato sandbox's layout); a node's counts 0 where unknown."""
    total = 0.0
    for node in nodes:
        name = f"kato-sandbox/{NAME}-{node}/cpu.stat"
        for stat in (CGROUPS / name, CGROUPS / "unified" / name):
            if stat.exists():
                for line in stat.read_text().splitlines():
                    if line.startswith("usage_usec "):
                        total += int(line.split()[1]) / 1e6
                break
    return total


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B")
    if text[-1:] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def measure(
    box: Sandbox, size: int, runs: int, work: Path, against: Path | None
) -> tuple[int, Figures]:
    data = int(box.ssh(FILL, DATA_DIR, str(size)).strip())
    figures = Figures()
    ssh = f"ssh -F {box.ssh_config} node1"
    for _ in range(runs):
        figures.load.append(os.getloadavg()[0])
        base, mine = work / "baseline.tar.zst", work / "kato.tar.zst"
        seconds = box.pipeline(f"{ssh} 'tar -cf - -C {DATA_DIR} .' | zstd -1 -T0 -q > {base}")
        figures.base_export.append(data / seconds / 1e6)
        figures.base_cpu.append(box.cpu)
        seconds, rss = box.kato("data", "export", str(mine), "--role", "filesystem")
        figures.kato_export.append(data / seconds / 1e6)
        figures.kato_cpu.append(box.cpu)
        figures.export_rss.append(rss)
        if against is not None:  # the other kato right after, interleaved run by run
            other = work / "other.tar.zst"
            seconds, _ = box.kato("data", "export", str(other), "--role", "filesystem",
                                  checkout=against)  # fmt: skip
            figures.other_export.append(data / seconds / 1e6)
            figures.other_export_cpu.append(box.cpu)
            other.unlink()
        figures.base_verify.append(box.pipeline(f"zstd -d -q -c {mine} | sha256sum >/dev/null"))
        figures.base_verify_cpu.append(box.cpu)
        seconds, rss = box.kato("data", "verify", str(mine))
        figures.kato_verify.append(seconds)
        figures.kato_verify_cpu.append(box.cpu)
        figures.verify_rss.append(rss)
        if against is not None:
            seconds, _ = box.kato("data", "verify", str(mine), checkout=against)
            figures.other_verify.append(seconds)
            figures.other_verify_cpu.append(box.cpu)
        figures.base_bytes, figures.kato_bytes = base.stat().st_size, mine.stat().st_size

        box.ssh('rm -rf "$1" && mkdir "$1"', RESTORE_DIR)
        seconds = box.pipeline(f"zstd -d -c -q {base} | {ssh} 'tar -xf - -C {RESTORE_DIR}'")
        figures.base_import.append(data / seconds / 1e6)
        figures.base_import_cpu.append(box.cpu)
        box.ssh('rm -rf "$1"', RESTORE_DIR)
        seconds, rss = box.kato("data", "import", str(mine))
        figures.kato_import.append(data / seconds / 1e6)
        figures.kato_import_cpu.append(box.cpu)
        figures.import_rss.append(rss)
        box.kato("data", "cleanup")
        if against is not None:  # the other kato right after, interleaved run by run
            seconds, _ = box.kato("data", "import", str(mine), checkout=against)
            figures.other_import.append(data / seconds / 1e6)
            figures.other_import_cpu.append(box.cpu)
            box.kato("data", "cleanup")
        base.unlink()
        mine.unlink()
    return data, figures


THREE = ("node1", "node2", "node3")


@dataclass
class Side:
    """One exporter's (kato's or the baseline's) seconds and CPU-seconds: node1 alone and the
    three nodes at once."""

    name: str
    alone: list[float] = field(default_factory=list)
    three: list[float] = field(default_factory=list)
    alone_cpu: list[float] = field(default_factory=list)
    three_cpu: list[float] = field(default_factory=list)

    def line(self) -> str:
        med = statistics.median
        return (
            f"  {self.name}: node1 alone {med(self.alone):.2f} s ({med(self.alone_cpu):.1f} "
            f"CPU-s), three at once {med(self.three):.2f} s ({med(self.three_cpu):.1f} CPU-s): "
            f"{med(self.three) / med(self.alone):.2f}x the time, "
            f"{med(self.three_cpu) / med(self.alone_cpu):.2f}x the CPU; the CPU of three on "
            f"{CORES} cores takes at least {med(self.three_cpu) / CORES:.2f} s = "
            f"{med(self.three_cpu) / CORES / med(self.alone):.2f}x alone"
        )


CORES = os.cpu_count() or 1


def three_node_cluster(box: Sandbox, size: int, work: Path) -> Path:
    """A copy of the cluster file giving node2 and node3 the filesystem role too, and SIZE of
    data in that role's data dir on all three nodes."""
    document = yaml.safe_load(Path(box.cluster).read_text())
    for node in document["nodes"]:
        if "filesystem" not in node["roles"]:
            node["roles"].append("filesystem")
    three = work / "three.yaml"
    three.write_text(yaml.safe_dump(document))
    # each node defines its roles from the release it runs: give node2 and node3 the role's
    # definition there (as installing the role would), else they have no such data dir
    release = "/var/lib/kato/releases/current/filesystem"
    encoded = box.ssh(f"base64 -w0 {release}/role.yaml").strip()
    for node in ("node2", "node3"):
        script = f"mkdir -p {release} && echo {encoded} | base64 -d > {release}/role.yaml"
        box.ssh(script, node=node)
    for node in THREE:
        box.ssh(FILL, DATA_DIR, str(size), node=node)
    return three


def baseline_at_once(box: Sandbox, nodes: tuple[str, ...], work: Path) -> str:
    """The baseline export of each node, `ssh NODE tar | zstd -1 -T0 > FILE` (a file each),
    started together and waited together: one node's the same way, so both pay the same."""
    jobs = "".join(
        f"{{ ssh -F {box.ssh_config} {node} 'tar -cf - -C {DATA_DIR} .' "
        f"| zstd -1 -T0 -q > {work / f'base-{node}.tar.zst'}; }} & p+=($!); "
        for node in nodes
    )
    return f'p=(); {jobs}s=0; for q in "${{p[@]}}"; do wait "$q" || s=1; done; exit $s'


def measure_parallel(
    box: Sandbox, size: int, runs: int, work: Path, against: Path | None = None
) -> None:
    """node1 alone against node1, node2 and node3 at once, SIZE of data on each: the baseline's
    pipelines and kato's export (and --against's kato right after), in the same runs."""
    three = three_node_cluster(box, size, work)
    base, kato = Side("baseline `ssh tar | zstd -1 -T0`"), Side("kato data export          ")
    other = Side("--against's kato export   ")
    katos = ((kato, None),) if against is None else ((kato, None), (other, against))
    load: list[float] = []
    box.counted = THREE  # the machine's CPU: every node's, whichever exports
    archive = work / "parallel.tar.zst"
    for _ in range(runs):
        load.append(os.getloadavg()[0])
        for nodes, seconds, spent in ((("node1",), base.alone, base.alone_cpu),
                                      (THREE, base.three, base.three_cpu)):  # fmt: skip
            seconds.append(box.pipeline(baseline_at_once(box, nodes, work)))
            spent.append(box.cpu)
            for node in nodes:
                (work / f"base-{node}.tar.zst").unlink()
        for side, checkout in katos:
            for cluster, seconds, spent, only in (
                (box.cluster, side.alone, side.alone_cpu, ("--node", "node1")),
                (str(three), side.three, side.three_cpu, ()),
            ):
                seconds.append(box.kato("data", "export", str(archive), "--role", "filesystem",
                                        *only, cluster=cluster, checkout=checkout)[0])  # fmt: skip
                spent.append(box.cpu)
                archive.unlink()
    box.counted = ("node1",)
    med = statistics.median
    print(
        f"parallel export, {size / 1e6:.0f} MB on each node, medians of {runs} runs "
        f"(load average {min(load):.1f}-{max(load):.1f}); CPU-s = this process tree's + the "
        "three nodes' cgroups'"
    )
    print(base.line())
    print(kato.line())
    if against is not None:
        print(other.line())
    print(
        f"  kato's three at once against the baseline's three at once: "
        f"{med(kato.three) / med(base.three):.2f}x the time, "
        f"{med(kato.three_cpu) / med(base.three_cpu):.2f}x the CPU; kato's ratio "
        f"{med(kato.three) / med(kato.alone):.2f}x against the baseline's "
        f"{med(base.three) / med(base.alone):.2f}x"
    )
    sides = {"base": vars(base), "kato": vars(kato), "other": vars(other), "load": load}
    print(json.dumps({"parallel": sides}), file=sys.stderr)
    for node in ("node2", "node3"):
        box.ssh('rm -rf "$1"', DATA_DIR, node=node)


def cpu(kato: list[float], base: list[float]) -> str:
    """Median CPU-seconds, kato's against the baseline's."""
    med = statistics.median
    return f"{med(kato):.1f}/{med(base):.1f} = {med(kato) / max(med(base), 1e-9):.2f}x"


def report(rows: list[tuple[int, Figures]], runs: int) -> None:
    med = statistics.median
    header = (
        "size", "base exp MB/s", "kato exp MB/s", "ratio", "exp CPU s kato/base",
        "verify s base/kato", "verify CPU s base/kato", "verify RSS MiB",
        "exp RSS MiB",
        "base imp MB/s", "kato imp MB/s", "ratio", "imp CPU s kato/base", "imp RSS MiB", "load",
    )  # fmt: skip
    lines = []
    for data, f in rows:
        lines.append(
            (
                f"{data / 1e6:.0f} MB",
                f"{med(f.base_export):.0f}",
                f"{med(f.kato_export):.0f}",
                f"{med(f.kato_export) / med(f.base_export):.2f}x",
                cpu(f.kato_cpu, f.base_cpu),
                f"{med(f.base_verify):.2f}/{med(f.kato_verify):.2f}",
                f"{med(f.base_verify_cpu):.2f}/{med(f.kato_verify_cpu):.2f}",
                f"{med(f.verify_rss):.0f}",
                f"{med(f.export_rss):.0f}",
                f"{med(f.base_import):.0f}",
                f"{med(f.kato_import):.0f}",
                f"{med(f.kato_import) / med(f.base_import):.2f}x",
                cpu(f.kato_import_cpu, f.base_import_cpu),
                f"{med(f.import_rss):.0f}",
                f"{min(f.load):.1f}-{max(f.load):.1f}",
            )
        )
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    print(f"medians of {runs} runs; ratio = kato/baseline throughput")
    for row in [header, *lines]:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    for data, f in rows:
        if f.other_export:
            print(
                f"{data / 1e6:.0f} MB export, --against's kato: "
                f"{med(f.other_export) / med(f.base_export):.2f}x the baseline, "
                f"CPU {cpu(f.other_export_cpu, f.base_cpu)} (this kato: "
                f"{med(f.kato_export) / med(f.base_export):.2f}x)"
            )
        if f.other_import:
            print(
                f"{data / 1e6:.0f} MB import, --against's kato: "
                f"{med(f.other_import) / med(f.base_import):.2f}x the baseline, "
                f"CPU {cpu(f.other_import_cpu, f.base_import_cpu)}"
            )
        if f.other_verify:
            print(
                f"{data / 1e6:.0f} MB verify, --against's kato: {med(f.other_verify):.2f} s, "
                f"CPU {med(f.other_verify_cpu):.2f} s (this kato: {med(f.kato_verify):.2f} s, "
                f"CPU {med(f.kato_verify_cpu):.2f} s)"
            )
        print(
            f"{data / 1e6:.0f} MB: archive {f.kato_bytes / 1e6:.0f} MB (kato), "
            f"{f.base_bytes / 1e6:.0f} MB (baseline)"
        )
    print(json.dumps({f"{d}": vars(f) for d, f in rows}), file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--sizes", default="200M,2G", help="Data sizes, e.g. 200M,2G (none: no single-node table)."
    )
    parser.add_argument("--work", default="/var/tmp", help="Where the archives are written.")
    parser.add_argument("--parallel", default="", help="Data per node for the 3-node export.")
    parser.add_argument(
        "--against",
        type=Path,
        help="Another kato checkout (e.g. `git archive main` unpacked): its export of the same "
        "data and its verify and import of the same archive are timed right after this one's "
        "in every run, for a before/after.",
    )
    args = parser.parse_args()
    require_root("data")
    sizes = [] if args.sizes == "none" else [parse_size(s) for s in args.sizes.split(",")]
    # two archives here; the node's copies live on the same disk (or three nodes' and four
    # archives of the parallel runs)
    need = max(3 * max(sizes, default=0), 7 * parse_size(args.parallel or "0"))
    if shutil.disk_usage(args.work).free < need:
        print(f"scripts/bench data: {args.work} needs {need // 10**9} GB free", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="kbdata-", dir=args.work))
    try:
        with sandbox(NAME, 3) as info:
            packages = [Path(__file__).resolve().parents[1] / "kato"]
            if args.against is not None:
                packages.append(args.against.resolve() / "kato")
            subprocess.run((sys.executable, "-m", "compileall", "-q", *map(str, packages)),
                           check=True)  # fmt: skip
            box = Sandbox(info)
            if sizes:
                report([measure(box, size, args.runs, work, args.against) for size in sizes],
                       args.runs)  # fmt: skip
            if args.parallel:
                measure_parallel(box, parse_size(args.parallel), args.runs, work, args.against)
            return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
