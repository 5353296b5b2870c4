"""`kato data schedule add|list|remove`: kato's export entries in root's crontab on the core."""

from __future__ import annotations

import hashlib
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from crontab import CronSlices, CronTab

from kato.config import Cluster
from kato.connect import connections, this_node
from kato.data.archive import COMPRESSIONS
from kato.data.crontab_lines import TAG, Entry, entry_line, parse_entries, with_line, without_entry
from kato.errors import KatoError, PreflightRefused, UsageError
from kato.operation import operation
from kato.transport.base import Transport

KATO_ON_CORE = "/usr/local/bin/kato"
CLUSTER_ON_CORE = "/etc/kato/cluster.yaml"
LOG_DIR = "/var/log/kato"
METRICS_DIR = "/var/lib/node_exporter/textfile_collector"
DEFAULT_LOCK_WAIT = 1800.0
UNSAFE = re.compile(r"[%\n\r\0]")  # cron turns % into a newline; none may reach the line


@dataclass(frozen=True)
class RunOptions:
    """What one scheduled run does: the options of `kato data schedule run`."""

    dest: str
    keep: int | None = None
    only: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    compress: str = "zstd"
    lock_wait: float = DEFAULT_LOCK_WAIT
    metrics: str | None = None
    offsite: str | None = None  # REMOTE:PATH the verified archive is uploaded to
    parallel: int | None = None  # --parallel of each run (None: the cluster file's, then)

    def argv(self) -> list[str]:
        argv = ["--dest", self.dest]
        if self.keep is not None:
            argv += ["--keep", str(self.keep)]
        if self.only:
            argv += ["--role", ",".join(self.only)]
        if self.exclude:
            argv += ["--exclude", ",".join(self.exclude)]
        argv += ["--compress", self.compress, "--lock-wait", f"{self.lock_wait:g}"]
        if self.metrics:
            argv += ["--metrics", self.metrics]
        if self.offsite:
            argv += ["--offsite", self.offsite]
        if self.parallel is not None:
            argv += ["--parallel", str(self.parallel)]
        return argv


@dataclass(frozen=True)
class Runner:
    """What cron on the core node starts: a kato (its argv) with a cluster file."""

    kato: tuple[str, ...] = (KATO_ON_CORE,)
    cluster_file: str = CLUSTER_ON_CORE


def runner_on_core(
    cluster: Cluster,
    running: tuple[str, ...],
    kato: str | None = None,
    cluster_file: str | None = None,
) -> Runner:
    """The kato and cluster file cron should use: the ones given; else, when this machine is
    the core node, the kato running now (`running`) and the cluster file it read; else the
    conventional paths of a core node (/usr/local/bin/kato, /etc/kato/cluster.yaml)."""
    default = Runner()
    if _runs_on_core(cluster):
        default = Runner(running, str(Path(cluster.path).absolute()))
    chosen = Runner((kato,) if kato else default.kato, cluster_file or default.cluster_file)
    for value in (*chosen.kato[:1], chosen.cluster_file):
        if not value.startswith("/") or UNSAFE.search(value):
            raise UsageError(
                f"{value!r} must be an absolute path without %, a newline or NUL",
                hint="pass --kato and --cluster-file as absolute paths on the core node",
            )
    return chosen


def _runs_on_core(cluster: Cluster) -> bool:
    try:
        return this_node(cluster).name == cluster.core
    except UsageError:
        return False


@dataclass(frozen=True)
class Change:
    entry: Entry
    line: str
    dry_run: bool


def validate_cron(cron: str) -> None:
    if not CronSlices.is_valid(cron):
        raise UsageError(
            f"--cron {cron!r} is not a valid cron schedule",
            hint="five fields (minute hour day-of-month month day-of-week), e.g. "
            "--cron '0 3 * * *', or @daily, @hourly",
        )


def validate_options(options: RunOptions, roles: set[str]) -> None:
    """Every problem of a run's options before anything is done (UsageError, exit 2)."""
    if options.keep is not None and options.keep < 1:
        raise UsageError(
            f"--keep must be at least 1, not {options.keep}",
            hint="leave --keep out to keep every archive",
        )
    if options.compress not in COMPRESSIONS:
        raise UsageError(f"--compress {options.compress!r}: use one of {', '.join(COMPRESSIONS)}")
    unknown = sorted((set(options.only) | set(options.exclude)) - roles)
    if unknown:
        raise UsageError(
            f"no role named {', '.join(unknown)} in this cluster",
            hint=f"roles: {', '.join(sorted(roles))}",
        )
    if options.offsite is not None:
        from kato.data.shipping import location

        location(options.offsite, "--offsite")
    if options.metrics is not None and not options.metrics.startswith("/"):
        raise UsageError(f"--metrics {options.metrics!r} must be an absolute path")
    for value in options.argv():
        if UNSAFE.search(value):
            raise UsageError(
                f"{value!r} contains %, a newline or NUL, which a crontab line cannot carry",
                hint="choose a path without them",
            )


def cluster_roles(cluster: Cluster) -> set[str]:
    return {r for n in cluster.nodes for r in n.roles}


def entry_id(cron: str, options: RunOptions) -> str:
    """Short and stable: the same schedule and options always get the same id."""
    text = "\0".join([cron, *options.argv()])
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def log_path(entry: str) -> str:
    return f"{LOG_DIR}/export-{entry}.log"


def metrics_path(entry: str) -> str:
    return f"{METRICS_DIR}/kato_data_export_{entry}.prom"


def command(options: RunOptions, entry: str, runner: Runner = Runner()) -> str:
    """The crontab command: kato on the core node, its log appended, every arg quoted."""
    argv = [*runner.kato, "--cluster", runner.cluster_file, "data", "schedule", "run"]
    return f"{shlex.join(argv + options.argv())} >> {shlex.quote(log_path(entry))} 2>&1"


def render_line(cron: str, options: RunOptions, entry: str, runner: Runner = Runner()) -> str:
    job = CronTab().new(command=command(options, entry, runner), comment=TAG + entry)
    job.setall(cron)
    return str(job.render()) + "\n"


def read_crontab(core: Transport) -> str:
    done = core.run(("crontab", "-l"), check=False)
    if done.ok:
        return done.stdout
    if "no crontab for" in done.stderr:
        return ""
    if done.status == 127:
        raise PreflightRefused(
            f"{core.node}: there is no crontab command on the core node",
            hint="install cron there: apt-get install -y cron",
        )
    raise KatoError(f"{core.node}: `crontab -l` exited {done.status}: {done.stderr.strip()}")


def write_crontab(core: Transport, text: str) -> None:
    if text.strip():
        core.run(("crontab", "-"), stdin=text.encode())
    else:
        core.run(("crontab", "-r"), check=False)  # an empty crontab: none at all


def require_kato_on_core(core: Transport, runner: Runner) -> None:
    for flag, path, what in (
        ("-x", runner.kato[0], "kato is not installed"),
        ("-f", runner.cluster_file, "there is no cluster file"),
    ):
        if not core.run(("test", flag, path), check=False).ok:
            raise PreflightRefused(
                f"{core.node}: {what} at {path} on the core node, so cron there cannot run "
                "the export",
                hint=f"install kato on {core.node} (docs/install.md), or name its paths there "
                "with --kato and --cluster-file (a sandbox made by `kato sandbox up` has "
                f"{KATO_ON_CORE} and {CLUSTER_ON_CORE})",
            )


def add(
    cluster: Cluster,
    cron: str,
    options: RunOptions,
    *,
    lock_wait: float = 0.0,
    dry_run: bool = False,
    command_line: Sequence[str] = (),
    runner: Runner = Runner(),
) -> Change:
    """Add one export entry to root's crontab on the core node (its id is stable); cron
    starts `runner` (see runner_on_core)."""
    cron = " ".join(cron.split())
    validate_cron(cron)
    if not options.dest.startswith("/"):
        raise UsageError(f"--dest {options.dest!r} must be an absolute path on the core node")
    validate_options(options, cluster_roles(cluster))
    entry = entry_id(cron, options)
    if options.metrics is None:
        options = replace(options, metrics=metrics_path(entry))
    line = render_line(cron, options, entry, runner)
    added = entry_line(line)
    assert added is not None  # rendered from a schedule validated just above
    with connections(cluster) as conns:
        core = conns.get(cluster.core)
        require_kato_on_core(core, runner)
        _refuse_duplicate(parse_entries(read_crontab(core)), entry, options.dest)
        with operation(
            conns, cluster.core, command_line, lock_wait=lock_wait, dry_run=dry_run
        ) as op:
            if not dry_run:
                text = read_crontab(core)  # again, under the lock: another add may have run
                _refuse_duplicate(parse_entries(text), entry, options.dest)
                started = time.monotonic()
                core.run(("mkdir", "-p", "-m", "0750", LOG_DIR))
                write_crontab(core, with_line(text, line))
                op.step(
                    cluster.core,
                    f"crontab: add {TAG}{entry}",
                    ("crontab", "-"),
                    "ok",
                    time.monotonic() - started,
                )
    return Change(added, line, dry_run)


def _refuse_duplicate(entries: list[Entry], entry: str, dest: str) -> None:
    for e in entries:
        if e.id == entry:
            raise UsageError(
                f"this schedule is already in the crontab as {entry}",
                hint="see `kato data schedule list`",
            )
        if e.dest == dest:
            raise UsageError(
                f"entry {e.id} already exports to {dest}: two schedules would apply their "
                "retention to each other's archives",
                hint=f"remove it first (kato data schedule remove {e.id}), or use another --dest",
            )


def entries(cluster: Cluster) -> list[Entry]:
    with connections(cluster) as conns:
        return parse_entries(read_crontab(conns.get(cluster.core)))


def remove(
    cluster: Cluster,
    entry: str,
    *,
    lock_wait: float = 0.0,
    dry_run: bool = False,
    command_line: Sequence[str] = (),
) -> Entry:
    """Remove kato's entry `entry` (only that line) from root's crontab on the core node."""
    with connections(cluster) as conns:
        core = conns.get(cluster.core)
        found = _find(read_crontab(core), entry, cluster.core)
        with operation(
            conns, cluster.core, command_line, lock_wait=lock_wait, dry_run=dry_run
        ) as op:
            if not dry_run:
                text = read_crontab(core)  # again, under the lock
                _find(text, entry, cluster.core)
                started = time.monotonic()
                write_crontab(core, without_entry(text, entry))
                op.step(
                    cluster.core,
                    f"crontab: remove {TAG}{entry}",
                    ("crontab", "-"),
                    "ok",
                    time.monotonic() - started,
                )
    return found


def _find(text: str, entry: str, core: str) -> Entry:
    known = parse_entries(text)
    for e in known:
        if e.id == entry:
            return e
    raise UsageError(
        f"there is no kato schedule {entry!r} in root's crontab on {core}",
        hint=f"known ids: {', '.join(e.id for e in known) or 'none'} "
        "(see `kato data schedule list`)",
    )
