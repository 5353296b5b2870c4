"""`kato check`: the cluster judged as a Nagios/Icinga plugin: one status line with perfdata,
exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (pure: thresholds applied to a monitor.Snapshot)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from kato.errors import UsageError
from kato.monitor import Snapshot

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
NAMES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)?$")


@dataclass(frozen=True)
class Thresholds:
    load: float  # 1-minute load average per CPU
    disk: float  # percent used of a data dir's filesystem
    inodes: float  # percent of its inodes used
    backup: float  # seconds since the last successful scheduled export


WARN = Thresholds(load=2.0, disk=80.0, inodes=80.0, backup=26 * 3600.0)
CRIT = Thresholds(load=4.0, disk=90.0, inodes=90.0, backup=50 * 3600.0)


def thresholds(spec: str | None, base: Thresholds, option: str) -> Thresholds:
    """`load=2,disk=85,inodes=80,backup=26h` (any subset) over the defaults."""
    if not spec:
        return base
    changes: dict[str, float] = {}
    for item in spec.split(","):
        key, _, value = item.strip().partition("=")
        if key not in ("load", "disk", "inodes", "backup"):
            raise UsageError(
                f"{option} {item!r}: unknown measure {key!r}",
                hint=f"use load=N, disk=PCT, inodes=PCT, backup=DURATION, e.g. {option} "
                "disk=85,backup=26h",
            )
        changes[key] = _number(key, value, option)
    return replace(base, **changes)


def _number(key: str, value: str, option: str) -> float:
    match = DURATION.match(value.strip()) if key == "backup" else None
    if match:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2] or "s"]
        return float(match[1]) * unit
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if key == "backup" or not 0 <= number < float("inf"):
        raise UsageError(f"{option} {key}={value!r} is not a number (a duration for backup)")
    return number


@dataclass(frozen=True)
class Verdict:
    state: int
    problems: tuple[str, ...]  # worst first
    perfdata: tuple[str, ...]
    checked: str  # what was looked at, for the OK line

    @property
    def line(self) -> str:
        summary = "; ".join(self.problems[:3]) if self.problems else self.checked
        more = f" (+{len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        return f"KATO {NAMES[self.state]} - {summary}{more} | {' '.join(self.perfdata)}"


def plugin_text(text: str) -> str:
    """One line without `|` (which starts perfdata for Nagios)."""
    return " ".join(text.replace("|", "/").split())


def _level(value: float, warn: float, crit: float) -> int:
    return CRITICAL if value >= crit else WARNING if value >= warn else OK


def judge(snap: Snapshot, warn: Thresholds = WARN, crit: Thresholds = CRIT) -> Verdict:
    found: list[tuple[int, str]] = []
    perf: list[str] = []
    for f in snap.status.unreachable:
        found.append((CRITICAL, f"{f.node} unreachable ({f.phase}: {f.message})"))
    for node in snap.status.nodes:
        for role in node.roles:
            if not role.ok:
                found.append((CRITICAL, f"{node.name} {role.role} {role.health}"))
        use = snap.use[node.name]
        per_cpu = use.load1 / max(1, use.cpus)
        level = _level(per_cpu, warn.load, crit.load)
        if level:
            found.append((level, f"{node.name} load {per_cpu:.2f} per CPU"))
        perf.append(f"'{node.name}_load1'={per_cpu:.2f};{warn.load:g};{crit.load:g};0")
        for d in use.dirs:
            label = f"{node.name}_{d.role}_{d.name}"
            for measure, value, w, c in (
                ("disk", d.disk_pct, warn.disk, crit.disk),
                ("inodes", d.inodes_pct, warn.inodes, crit.inodes),
            ):
                level = _level(value, w, c)
                if level:
                    found.append((level, f"{node.name} {d.path} {measure} {value:.0f}% used"))
                perf.append(f"'{label}_{measure}'={value:.1f}%;{w:g};{c:g};0;100")
    if snap.core_checked:
        found += _cluster_wide(snap, warn, crit, perf)
    up = len(snap.status.nodes)
    perf.insert(0, f"'nodes_up'={up};;;0;{up + len(snap.status.unreachable)}")
    found.sort(key=lambda item: -item[0])
    found = [(level, plugin_text(text)) for level, text in found]
    state = max((level for level, _ in found), default=OK)
    checked = f"{up} nodes, {sum(len(n.roles) for n in snap.status.nodes)} roles healthy"
    return Verdict(state, tuple(text for _, text in found), tuple(perf), checked)


def _cluster_wide(
    snap: Snapshot, warn: Thresholds, crit: Thresholds, perf: list[str]
) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    if snap.status.lock_error:
        found.append((UNKNOWN, f"the lock could not be read: {snap.status.lock_error}"))
    if snap.lock_overdue is not None:
        found.append(
            (WARNING, f"a lock was left {snap.lock_overdue:.0f}s past its TTL (kato lock break)")
        )
    if snap.last_backup is None:
        found.append((WARNING, "no scheduled export has succeeded (kato data schedule add)"))
    else:
        age = max(0.0, snap.now - snap.last_backup)
        level = _level(age, warn.backup, crit.backup)
        if level:
            found.append((level, f"the last backup is {age / 3600:.1f}h old"))
        perf.append(f"'backup_age'={age:.0f}s;{warn.backup:g};{crit.backup:g};0")
    return found
