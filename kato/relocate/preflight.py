"""The preflight of `kato relocate`: every reason not to move, found from the nodes' facts by a
pure function, before anything changes. Problems refuse (exit 7); warnings are shown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kato.errors import PreflightRefused
from kato.relocate.facts import NodeFacts, PathInfo
from kato.relocate.targets import Target, is_within

# The reference platform's per-app disk limit lives in the containers dir (Stackato's rule).
QUOTA_DIRS = ("containers",)
# Filesystems whose content does not survive a reboot, or that hold no files at all.
VOLATILE = {
    "tmpfs", "ramfs", "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "mqueue",
    "hugetlbfs", "debugfs", "tracefs", "securityfs", "pstore", "configfs", "fusectl", "autofs",
    "bpf", "binfmt_misc",
}  # fmt: skip
KNOWN = {"ext4", "xfs", "btrfs", "ext3", "ext2", "zfs", "f2fs"}
IGNORED_NAMES = {"lost+found"}  # what a fresh filesystem holds
MARGIN_BYTES = 64 * 2**20
MARGIN_SHARE = 0.05


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def refuse_if_any(self) -> None:
        if self.problems:
            listing = "\n".join(f"  {p}" for p in self.problems)
            raise PreflightRefused(
                f"kato relocate refused (nothing was changed):\n{listing}",
                hint="see docs/relocate.md (Preflight) for each check",
            )


def needed_bytes(used: int) -> int:
    return int(used * (1 + MARGIN_SHARE)) + MARGIN_BYTES


def check(
    targets: Sequence[Target],
    facts: Mapping[str, NodeFacts],
    location: str,
    *,
    no_quota: bool = False,
) -> Preflight:
    found = Preflight()
    for node in dict.fromkeys(t.node for t in targets):
        mine = [t for t in targets if t.node == node and not t.done]
        if mine:
            _node(found, mine, facts[node], location, no_quota)
    return found


def _node(
    found: Preflight, targets: list[Target], facts: NodeFacts, location: str, no_quota: bool
) -> None:
    node = facts.node
    new = facts.paths[location]
    if new.kind == "symlink":
        found.problems.append(f"{node}: {location} is a symlink: give the real path")
        return
    if new.kind == "other":
        found.problems.append(f"{node}: {location} exists and is not a directory")
        return
    if new.fstype in VOLATILE:
        found.problems.append(
            f"{node}: {location} is on {new.fstype} (mounted at {new.mount}), which does not "
            "keep data across a reboot: give a path on a mounted disk"
        )
        return
    if new.fstype not in KNOWN:
        found.warnings.append(f"{node}: {location} is on {new.fstype}, which kato has not tried")
    _nesting(found, targets, facts, location)
    _holds_data(found, targets, facts, location, new)
    _space(found, targets, facts, new)
    for t in targets:
        source = facts.paths[t.current]
        if source.kind != "dir":
            found.problems.append(f"{t.shown}: its data dir {t.current} is not a directory")
        elif source.device == new.device:
            found.warnings.append(
                f"{t.shown}: {location} is on the same filesystem as {t.current} "
                f"({new.mount}): nothing is gained"
            )
    if any(t.name in QUOTA_DIRS for t in targets) and facts.quota and not facts.quota.supported:
        if not no_quota:
            found.problems.append(
                f"{node}: {location} ({new.fstype}) cannot carry the per-app quotas: "
                f"{facts.quota.why}; give --no-quota to move it without quotas"
            )
        else:
            found.warnings.append(f"{node}: moving without quotas: {facts.quota.why}")


def _nesting(found: Preflight, targets: list[Target], facts: NodeFacts, location: str) -> None:
    """The location must not be inside any data dir of the node, nor hold the moved one."""
    for role, names in _all_dirs(facts, targets).items():
        for name, path in names.items():
            if is_within(location, path):
                found.problems.append(
                    f"{facts.node}: {location} is inside the {name} data dir of {role} ({path})"
                )
            elif is_within(path, location):
                found.problems.append(
                    f"{facts.node}: the {name} data dir of {role} ({path}) is inside {location}"
                )


def _all_dirs(facts: NodeFacts, targets: list[Target]) -> dict[str, dict[str, str]]:
    dirs = {t.role.name: {t.name: t.current} for t in targets}
    for role, names in facts.locations.moved.items():
        dirs.setdefault(role, {}).update(names)
    for role, olds in facts.locations.previous.items():
        for name, paths in olds.items():
            for index, old in enumerate(paths):
                dirs.setdefault(role, {})[f"{name} (old copy {index + 1})"] = old
    return dirs


def _holds_data(
    found: Preflight, targets: list[Target], facts: NodeFacts, location: str, new: PathInfo
) -> None:
    """Only a fresh filesystem's lost+found, or a copy an interrupted run of ours left."""
    ours = {
        t.dest.rsplit("/", 1)[1]
        for t in targets
        if facts.locations.moving.get(t.role.name, {}).get(t.name, ("", ""))[0] == t.dest
    }
    theirs = [n for n in new.names if n not in IGNORED_NAMES and n not in ours]
    if new.kind == "dir" and theirs:
        shown = ", ".join(theirs[:5]) + (", ..." if len(theirs) > 5 else "")
        found.problems.append(
            f"{facts.node}: {location} already holds data ({shown}): kato moves data only "
            "into an empty directory"
        )


def _space(found: Preflight, targets: list[Target], facts: NodeFacts, new: PathInfo) -> None:
    used = sum(facts.paths[t.current].used for t in targets if t.current in facts.paths)
    copied = sum(facts.paths[t.dest].used for t in targets if facts.paths[t.dest].kind == "dir")
    need = max(0, needed_bytes(used) - copied)
    if new.free < need:
        found.problems.append(
            f"{facts.node}: {new.mount} has {human_size(new.free)} free; moving "
            f"{human_size(used)} needs {human_size(need)} (the data, 5% and 64 MiB)"
        )


def human_size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
