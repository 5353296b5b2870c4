"""`kato upgrade resume`: continue the interrupted upgrade the record on the core node names,
as running its command again would (an in-place upgrade to its end, a graceful one's prep to
prepped, its takeover to its end); each of those picks up after its last recorded phase."""

from __future__ import annotations

from collections.abc import Sequence

from kato.config import Cluster
from kato.connect import connections
from kato.errors import UsageError
from kato.progress import Progress
from kato.upgrade import graceful, inplace, state, takeover
from kato.upgrade.inplace import UpgradeOutcome


def resume(
    cluster: Cluster,
    *,
    repo: str | None = None,
    backup_dir: str = inplace.DEFAULT_BACKUP_DIR,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    command: Sequence[str] = (),
    progress: Progress | None = None,
) -> UpgradeOutcome:
    with connections(cluster) as conns:
        rec = state.read(conns.get(cluster.core))
    if rec is None or not rec.unfinished:
        raise UsageError("no upgrade is unfinished", hint="`kato upgrade status` says more")
    if rec.kind == "in-place":
        return inplace.in_place(
            cluster,
            rec.target,
            repo=repo,
            backup_dir=backup_dir,
            dry_run=dry_run,
            lock_wait=lock_wait,
            command=command,
            progress=progress,
        )
    if rec.phase in graceful.PREP:
        return graceful.prep(
            cluster,
            rec.target,
            stateless=rec.stateless,
            repo=repo,
            backup_dir=backup_dir,
            dry_run=dry_run,
            lock_wait=lock_wait,
            command=command,
            progress=progress,
        )
    return takeover.takeover(
        cluster,
        rec.target,
        repo=repo,
        dry_run=dry_run,
        lock_wait=lock_wait,
        command=command,
        progress=progress,
    )
