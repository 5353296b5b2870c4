"""What an archive may ask of the nodes, checked before a byte is staged: its expansion
(declared bytes per byte of archive), its entries, and each target's free space and inodes."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from kato.config import DataLimits
from kato.data.manifest import Manifest
from kato.errors import PreflightRefused, UsageError

# Below this much declared data the ratio is not checked: a small archive cannot fill a node,
# and a few kilobytes of padding compress a thousandfold.
RATIO_FLOOR = 64 * 2**20
RESERVE = 0.02  # of each target filesystem's size and inodes, left free after an import
UNLIMITED = DataLimits(max_entries=10_000_000, max_ratio=float("inf"))  # kato's own exports


class LimitExceeded(PreflightRefused):
    """The archive asks for more than the limits allow; the operator may raise them."""

    def __init__(self, path: str, what: str, option: str, key: str) -> None:
        super().__init__(
            f"{path}: {what}",
            hint=f"nothing was written; if you trust this archive, raise the limit with "
            f"{option} (or data.{key} in the cluster file)",
        )


def resolved(base: DataLimits, max_entries: int | None, max_ratio: float | None) -> DataLimits:
    """The cluster file's limits (or the defaults) with the command line's flags on top."""
    if max_entries is not None and max_entries < 1:
        raise UsageError(f"--max-entries must be at least 1, not {max_entries}")
    if max_ratio is not None and not 1 <= max_ratio < float("inf"):
        raise UsageError(f"--max-ratio must be a finite number of at least 1, not {max_ratio}")
    return replace(
        base,
        max_entries=base.max_entries if max_entries is None else max_entries,
        max_ratio=base.max_ratio if max_ratio is None else max_ratio,
    )


def check_expansion(
    manifest: Manifest, path: str, limits: DataLimits, shown: str | None = None
) -> None:
    """The declared bytes against the archive's own size, read from the manifest alone."""
    over = expansion_over(manifest, os.stat(path).st_size, limits)
    if over:
        raise LimitExceeded(shown or path, over, "--max-ratio N", "max_ratio")


def expansion_over(manifest: Manifest, size: int, limits: DataLimits) -> str | None:
    """What an archive of `size` bytes with this manifest declares beyond the expansion
    limit (None within it): an import's refusal, and an export's warning that its own
    archive will need the limit raised (a sparse or very compressible data dir)."""
    declared = sum(m.size for m in manifest.members)
    size = max(size, 1)
    if declared > RATIO_FLOOR and declared > limits.max_ratio * size:
        return (
            f"declares {_mib(declared)} of data in {_mib(size)} of archive "
            f"({declared / size:.0f} times its size; the limit is {limits.max_ratio:g})"
        )
    return None


def check_entries(manifest: Manifest, limits: DataLimits, shown: str) -> None:
    """A format-2 manifest's entries against the limit, before any data is read (a manifest
    that lies is caught as each tree passes: kato data verify counts them)."""
    listed = [m for m in manifest.members if m.entries is not None]
    total = 0
    for member in listed:
        total += member.entries or 0
        if total > limits.max_entries:
            raise too_many_entries(shown, member.name, limits)


def too_many_entries(path: str, member: str, limits: DataLimits) -> LimitExceeded:
    return LimitExceeded(
        path,
        f"{member}: more than {limits.max_entries} files, dirs and links in the archive's trees",
        "--max-entries N",
        "max_entries",
    )


def export_too_many_entries(where: str, limits: DataLimits) -> PreflightRefused:
    """An export's trees hold more entries than an import would accept: refused while it
    reads them (an archive nobody could import without raising the limit is not published)."""
    return PreflightRefused(
        f"{where}: more than {limits.max_entries} files, dirs and links in this export's data "
        "dirs (data.max_entries)",
        hint="nothing was published; if that many are expected, raise the limit with "
        "--max-entries N (or data.max_entries in the cluster file), or leave that data dir "
        "out with --role/--exclude/--node",
    )


def check_room(node: str, parent: str, free: dict[str, Any], size: int, inodes: int) -> None:
    """`size` bytes and `inodes` new entries fit on the filesystem of `parent`, keeping RESERVE
    of its size and of its inodes free (a filesystem without an inode limit reports 0)."""
    room = int(free.get("free", 0)) - int(RESERVE * int(free.get("size", 0)))
    if room < size:
        raise PreflightRefused(
            f"{node}: {parent} has {_mib(max(room, 0))} free (keeping {RESERVE:.0%} in reserve), "
            f"the import needs about {_mib(size)} there",
            hint="free space on that filesystem (or relocate the data dir); nothing was changed",
        )
    total = int(free.get("inodes", 0))
    spare = int(free.get("inodes_free", 0)) - int(RESERVE * total)
    if total and spare < inodes:
        raise PreflightRefused(
            f"{node}: {parent} has {max(spare, 0)} free inodes (keeping {RESERVE:.0%} in "
            f"reserve), the import creates {inodes} files, dirs and links there",
            hint="free inodes on that filesystem (or relocate the data dir); nothing was changed",
        )


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB" if size >= 2**20 else f"{size} bytes"
