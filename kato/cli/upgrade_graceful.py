"""`kato upgrade prep|takeover`: the two halves of a graceful upgrade."""

from __future__ import annotations

import typer

from kato import output
from kato.cli.common import DRY_RUN, JSON, LOCK_WAIT, PARALLEL, load_cluster
from kato.cli.errors import reported
from kato.cli.upgrade_common import BACKUP_DIR, NO_BACKUP, REPO, VERSION, finish, options


def prep(
    version: str = VERSION,
    stateless: bool = typer.Option(
        False,
        "--stateless",
        help="Leave the data services (postgresql, redis, filesystem) running.",
    ),
    backup_dir: str = BACKUP_DIR,
    no_backup: bool = NO_BACKUP,
    repo: str = REPO,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    parallel: int = PARALLEL,
    as_json: bool = JSON,
) -> None:
    """First half of a graceful upgrade (within one major version): preflight, stage, export
    what the migrations touch, and stop every role that does not serve during the upgrade; the
    routers and the apps keep serving. Then `kato upgrade takeover VERSION`."""
    with reported(), output.progress() as progress:
        from kato.upgrade import graceful

        how = options(
            progress, repo, lock_wait, dry_run=dry_run, backup_dir=backup_dir, no_backup=no_backup
        )
        result = graceful.prep(load_cluster(parallel), version, how, stateless=stateless)
    finish(result, as_json)


def takeover(
    version: str = VERSION,
    repo: str = REPO,
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    parallel: int = PARALLEL,
    as_json: bool = JSON,
) -> None:
    """Second half of a graceful upgrade: each router node in turn is drained from the load
    balancer, moved to VERSION, health-gated and put back; then the other roles start on
    VERSION in role order with the migrations. A failed gate rolls back (exit 3)."""
    with reported(), output.progress() as progress:
        from kato.upgrade import takeover as taking

        how = options(progress, repo, lock_wait, dry_run=dry_run)
        result = taking.takeover(load_cluster(parallel), version, how)
    finish(result, as_json)
