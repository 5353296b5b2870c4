"""How an upgrade command was asked to run, as one value every upgrade command takes (and
`kato upgrade resume` hands on unchanged): the release repository, the pre-upgrade export, a
dry run, how long to wait for the lock, the command line for the lock and the journal, and
where progress goes."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from kato.config import Cluster
from kato.engine.session import Session, session
from kato.progress import Progress, SilentProgress

DEFAULT_BACKUP_DIR = "/var/lib/kato/upgrade-backups"


@dataclass(frozen=True)
class Options:
    repo: str | None = None  # the release repository (default: the cluster file's)
    backup_dir: str = DEFAULT_BACKUP_DIR  # where the pre-upgrade export goes (this machine)
    no_backup: bool = False  # --no-backup: no export before migrating (said loudly)
    dry_run: bool = False
    lock_wait: float = 0.0
    command: tuple[str, ...] = ()
    progress: Progress = field(default_factory=SilentProgress)

    def session(self, cluster: Cluster) -> AbstractContextManager[Session]:
        """The command's session: connections now, the lock and journal once begun."""
        return session(cluster, self.command, lock_wait=self.lock_wait, progress=self.progress)
