"""What every cluster command shares: the --cluster flag, loading the file, common options."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kato.errors import UsageError

if TYPE_CHECKING:
    from kato import config

cluster_flag: str | None = None

JSON = typer.Option(False, "--json", help="Print a JSON document instead of a table.")


def _cluster_for_completion(ctx: typer.Context) -> config.Cluster | None:
    """The cluster file the command line names (--cluster, else the default), or None."""
    from kato import config

    try:
        return config.load(ctx.find_root().params.get("cluster"))
    except Exception:  # completion must never fail the shell; it offers nothing instead
        return None


def _completed(known: list[str], incomplete: str) -> list[str]:
    """The known names the last comma-separated word starts, each after the words before."""
    before, comma, last = incomplete.rpartition(",")
    return [f"{before}{comma}{name}" for name in known if name.startswith(last)]


def _complete_nodes(ctx: typer.Context, incomplete: str) -> list[str]:
    cluster = _cluster_for_completion(ctx)
    return _completed([n.name for n in cluster.nodes] if cluster else [], incomplete)


def _complete_roles(ctx: typer.Context, incomplete: str) -> list[str]:
    return _completed(known_roles(_cluster_for_completion(ctx)), incomplete)


# How every command selects nodes and roles: these declarations, parsed by `chosen()`.
# tests/cli/test_consistency.py fails on a command that selects them any other way.
NODES = typer.Option(
    None,
    "--node",
    "-n",
    metavar="NODE",
    help="Only this node (repeatable, or comma-separated; default: every node).",
    autocompletion=_complete_nodes,
)
ROLES = typer.Option(
    None,
    "--role",
    "-r",
    metavar="ROLE",
    help="Only these roles (repeatable, or comma-separated; default: every role).",
    autocompletion=_complete_roles,
)
EXCLUDE_ROLES = typer.Option(
    None,
    "--exclude",
    "-x",
    metavar="ROLE",
    help="Leave these roles out (repeatable, or comma-separated).",
    autocompletion=_complete_roles,
)
# The old name of --role, hidden: crontab lines that `data schedule add` wrote before, and a
# `data import ssh://` from this kato or an older one, still say `--only`.
OLD_ONLY = typer.Option(None, "--only", hidden=True, help="The old name of --role.")
PARALLEL = typer.Option(
    None,
    "--parallel",
    metavar="N",
    min=1,
    max=256,
    help="How many nodes at once, 1-256 (default: the cluster file's ssh.parallel).",
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


@dataclass(frozen=True)
class Chosen:
    """What --node, --role and --exclude chose; empty means every node or role."""

    nodes: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @property
    def node_list(self) -> list[str] | None:
        return list(self.nodes) or None

    @property
    def role_list(self) -> list[str] | None:
        return list(self.roles) or None


def known_roles(cluster: config.Cluster | None) -> list[str]:
    """The roles the cluster file gives its nodes, sorted."""
    return sorted({r for n in cluster.nodes for r in n.roles}) if cluster else []


def names(values: Sequence[str] | None) -> tuple[str, ...]:
    """`--node a,b --node c` → (a, b, c), each once, in order."""
    split = (v.strip() for value in values or () for v in value.split(","))
    return tuple(dict.fromkeys(v for v in split if v))


def chosen(
    cluster: config.Cluster,
    nodes: Sequence[str] | None = None,
    roles: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> Chosen:
    """The one parse of --node/--role/--exclude: an unknown name is a usage error (exit 2)
    that lists the known ones, raised before anything is done."""
    picked = Chosen(names(nodes), names(roles), names(exclude))
    node_names = [n.name for n in cluster.nodes]
    unknown = [n for n in picked.nodes if n not in node_names]
    if unknown:
        raise UsageError(
            f"cluster {cluster.name!r} has no node {', '.join(map(repr, unknown))}",
            hint=f"its nodes: {', '.join(node_names)} (nothing was changed)",
        )
    role_names = known_roles(cluster)
    for option, given in (("--role", picked.roles), ("--exclude", picked.excluded)):
        unknown = [r for r in given if r not in role_names]
        if unknown:
            raise UsageError(
                f"{option}: no node of cluster {cluster.name!r} has role "
                f"{', '.join(map(repr, unknown))}",
                hint=f"its roles: {', '.join(role_names)} (nothing was changed)",
            )
    return picked


def load_cluster(parallel: int | None = None) -> config.Cluster:
    from kato import config  # commands import their domain when they run: --help stays fast

    return config.with_parallel(config.load(cluster_flag), parallel)


def load_chosen(
    parallel: int | None = None,
    nodes: Sequence[str] | None = None,
    roles: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> tuple[config.Cluster, Chosen]:
    """The cluster file with --parallel applied, and what --node/--role/--exclude chose."""
    cluster = load_cluster(parallel)
    return cluster, chosen(cluster, nodes, roles, exclude)


def seconds(text: str, option: str = "--lock-wait") -> float:
    match = DURATION.match(text.strip())
    if not match:
        raise UsageError(f"{option} {text!r} is not a duration", hint="use e.g. 30s, 10m, 1h")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]


def running_kato() -> tuple[str, ...]:
    """How to start this very kato again (cron does): its script, else this Python -m kato."""
    script = Path(sys.argv[0])
    if script.name == "kato" and script.is_file():
        return (str(script.absolute()),)
    return (sys.executable, "-m", "kato")


def invocation() -> list[str]:
    """This command line, for the lock and the journal (secrets are masked there)."""
    return ["kato", *sys.argv[1:]]
