"""A cgroup of its own for each node, so no two nodes' systemds manage the same cgroup tree.

systemd-nspawn with --keep-unit puts the node under the cgroup it was started in. Started from
one shared cgroup, every node's systemd would create its units under the same directories, and
stopping a unit on one node would kill that unit's processes on all of them. The supervisor
moves itself into /kato-sandbox/<machine> in the hierarchies systemd uses before it starts
systemd-nspawn.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "kato-sandbox"


def hierarchies() -> list[Path]:
    """The cgroup hierarchies systemd-nspawn uses here: the unified one alone (cgroup v2), or
    the named `systemd` v1 hierarchy plus the unified one (hybrid)."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    return [
        CGROUP_ROOT / name
        for name in ("systemd", "unified")
        if (CGROUP_ROOT / name / "cgroup.procs").exists()
    ]


def node_cgroups(machine: str) -> list[Path]:
    return [h / PARENT / machine for h in hierarchies()]


def enter(machine: str) -> None:
    """Move the calling process into the node's own cgroups."""
    for group in node_cgroups(machine):
        group.mkdir(parents=True, exist_ok=True)
        (group / "cgroup.procs").write_text(f"{os.getpid()}\n")


def members(machine: str) -> list[int]:
    pids: set[int] = set()
    for group in node_cgroups(machine):
        for procs in group.rglob("cgroup.procs") if group.exists() else ():
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except OSError:
                continue
    return sorted(pids)


def remove(machine: str) -> None:
    """Remove the node's (empty) cgroups, deepest first."""
    for group in node_cgroups(machine):
        if not group.exists():
            continue
        for sub in sorted(
            (p for p in group.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        ):
            _rmdir(sub)
        _rmdir(group)
        _rmdir(group.parent)  # the shared parent goes with the last node


def _rmdir(path: Path) -> None:
    with contextlib.suppress(OSError):  # still busy or already gone: a later `down` retries
        path.rmdir()
