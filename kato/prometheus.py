"""A monitor.Snapshot as node_exporter textfile metrics, written atomically (temp + rename)."""

from __future__ import annotations

import os
from pathlib import Path

from kato.errors import UsageError
from kato.monitor import Snapshot

HELP = {
    "kato_node_up": "1 if kato reached the node over SSH, else 0.",
    "kato_role_healthy": "1 if the role's units run and its health check passes, else 0.",
    "kato_node_load1_per_cpu": "The node's 1-minute load average divided by its CPUs.",
    "kato_datadir_used_ratio": "Used share of the filesystem holding the data dir.",
    "kato_datadir_inodes_used_ratio": "Used share of the inodes of that filesystem.",
    "kato_lock_held": "1 if an operation holds the cluster lock, else 0.",
    "kato_lock_overdue_seconds": "Seconds a left lock is past its TTL (0: none).",
    "kato_backup_last_success_timestamp_seconds": "Unix time of the last successful "
    "scheduled export (0: none).",
    "kato_status_timestamp_seconds": "Unix time these metrics were gathered.",
}


def _labels(**labels: str) -> str:
    def escaped(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escaped(v)}"' for k, v in labels.items()) + "}"


def render(snap: Snapshot) -> str:
    samples: dict[str, list[str]] = {name: [] for name in HELP}
    c = snap.cluster

    def add(name: str, value: float, **labels: str) -> None:
        shown = str(int(value)) if float(value).is_integer() else repr(round(float(value), 6))
        samples[name].append(f"{name}{_labels(cluster=c, **labels)} {shown}")

    for f in snap.status.unreachable:
        add("kato_node_up", 0, node=f.node)
    for node in snap.status.nodes:
        add("kato_node_up", 1, node=node.name)
        for role in node.roles:
            add("kato_role_healthy", 1 if role.ok else 0, node=node.name, role=role.role)
        use = snap.use[node.name]
        add("kato_node_load1_per_cpu", round(use.load1 / max(1, use.cpus), 4), node=node.name)
        for d in use.dirs:
            where = {"node": node.name, "role": d.role, "dir": d.name, "path": d.path}
            add("kato_datadir_used_ratio", round(d.disk_pct / 100, 4), **where)
            add("kato_datadir_inodes_used_ratio", round(d.inodes_pct / 100, 4), **where)
    if snap.core_checked:
        add("kato_lock_held", 1 if snap.status.lock else 0)
        add("kato_lock_overdue_seconds", round(snap.lock_overdue or 0.0, 1))
        add("kato_backup_last_success_timestamp_seconds", snap.last_backup or 0)
    add("kato_status_timestamp_seconds", round(snap.now, 3))
    lines: list[str] = []
    for name, values in samples.items():
        if values:
            lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} gauge", *values]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    """Write the textfile whole or not at all: a temporary name node_exporter ignores (not
    *.prom) in the same directory, fsynced, then renamed over the old file."""
    if path.suffix != ".prom":
        raise UsageError(
            f"--prometheus {path}: node_exporter reads only files ending in .prom",
            hint=f"e.g. --prometheus {TEXTFILE_HINT}",
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        raise UsageError(
            f"cannot write in {path.parent}: {exc.strerror}",
            hint="create the directory, or choose another (node_exporter's "
            "--collector.textfile.directory)",
        ) from None
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


TEXTFILE_HINT = "/var/lib/node_exporter/textfile_collector/kato.prom"
