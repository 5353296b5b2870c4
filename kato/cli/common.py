"""What every cluster command shares: the --cluster flag, loading the file, common options."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

import typer

from kato.errors import UsageError

if TYPE_CHECKING:
    from kato import config

cluster_flag: str | None = None

JSON = typer.Option(False, "--json", help="Print a JSON document instead of a table.")
NODES = typer.Option(None, "--node", help="Only this node (repeatable).")
ROLES = typer.Option(None, "--role", help="Only nodes with this role (repeatable).")
PARALLEL = typer.Option(
    None, "--parallel", help="How many nodes at once (default: the cluster file's ssh.parallel)."
)
THIS_NODE = typer.Option(False, "--only-this-node", help="Only the node kato runs on.")
DRY_RUN = typer.Option(False, "--dry-run", help="Print the plan and change nothing.")
VERBOSE = typer.Option(False, "--verbose", "-v", help="With --dry-run: every exact command.")
LOCK_WAIT = typer.Option(
    "0",
    "--lock-wait",
    help="Wait this long for the cluster lock, e.g. 30s, 10m (default: fail at once with exit 4).",
)
DURATION = re.compile(r"\A(\d+(?:\.\d+)?)(s|m|h)?\Z")


def load_cluster(parallel: int | None = None) -> config.Cluster:
    from kato import config  # commands import their domain when they run: --help stays fast

    return config.with_parallel(config.load(cluster_flag), parallel)


def seconds(text: str, option: str = "--lock-wait") -> float:
    match = DURATION.match(text.strip())
    if not match:
        raise UsageError(f"{option} {text!r} is not a duration", hint="use e.g. 30s, 10m, 1h")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]


def invocation() -> list[str]:
    """This command line, for the lock and the journal (secrets are masked there)."""
    return ["kato", *sys.argv[1:]]
