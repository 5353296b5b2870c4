"""Quotas on a relocation's new filesystem, set up by kato before any data moves: btrfs qgroups
(one subvolume and limit per app under the containers dir), ext4 journaled quotas with a boot
unit, xfs's mount option in fstab. What this kernel cannot do is refused (exit 7)."""

from __future__ import annotations

import time

from kato.errors import PreflightRefused
from kato.operation import Operation
from kato.progress import Progress
from kato.relocate.facts import PathInfo, ProgramFailed, run_program
from kato.relocate.steps import NodeRun, RelocationFailed
from kato.remote import quota
from kato.transport.base import Transport


def _quota(
    t: Transport, op: Operation, what: str, *args: str, moving: bool = False
) -> dict[str, object]:
    """Run the quota program. Before any data moves, its refusal (exit 3) is a preflight
    refusal: nothing was moved. Once the move is under way (`moving`), any failure is a failed
    step, never "nothing was moved": the rollout puts the old location back and says so."""
    started = time.monotonic()
    try:
        answer = run_program(t, "quota", *args, timeout=3600)
    except ProgramFailed as exc:
        op.step(t.node, what, None, f"exit {exc.status}", time.monotonic() - started)
        said = exc.line.removeprefix("quota: ")
        if moving:
            raise RelocationFailed(f"{what} failed: {said}") from exc
        if exc.status == quota.REFUSED:
            raise PreflightRefused(
                f"{t.node}: quotas cannot be set up: {said}",
                hint="nothing was moved; give --no-quota to move the data without quotas",
            ) from exc
        raise
    op.step(t.node, what, None, "ok", time.monotonic() - started)
    return answer


def enable(t: Transport, op: Operation, where: PathInfo, progress: Progress) -> None:
    """Turn quotas on for the whole filesystem (before the copy, so a refusal moves nothing)."""
    progress.step(f"{t.node}: setting up {where.fstype} quotas on {where.mount}")
    if where.fstype == "btrfs":
        _quota(t, op, f"enable btrfs quotas on {where.mount}", "setup-btrfs", where.mount, "-", "0")
    elif where.fstype in ("ext4", "xfs"):
        _quota(t, op, f"set up {where.fstype} quotas on {where.mount}", f"setup-{where.fstype}",
               where.mount)  # fmt: skip
    else:
        raise PreflightRefused(
            f"{t.node}: {where.fstype} cannot carry kato's per-app quotas",
            hint="use btrfs, ext4 or xfs, or give --no-quota",
        )


def limit_apps(t: Transport, op: Operation, where: PathInfo, run: NodeRun, limit: int) -> None:
    """Each app directory under the moved containers dir gets its limit (btrfs: a qgroup)."""
    if where.fstype != "btrfs":
        return
    for target in run.targets:
        _quota(t, op, f"limit each app under {target.dest} to {limit} bytes", "setup-btrfs",
               where.mount, target.dest, str(limit), moving=True)  # fmt: skip
