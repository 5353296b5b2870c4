"""`kato check`: a Nagios/Icinga plugin (one status line with perfdata, exit 0/1/2/3)."""

from __future__ import annotations

import typer

from kato import output
from kato.cli.common import NODES, PARALLEL, ROLES, load_chosen
from kato.errors import KatoError

UNKNOWN = 3


def check(
    node: list[str] = NODES,
    role: list[str] = ROLES,
    parallel: int = PARALLEL,
    warn: str = typer.Option(
        None,
        "--warn",
        "-w",
        help="WARNING thresholds: load=PER_CPU,disk=PCT,inodes=PCT,backup=AGE "
        "(default load=2,disk=80,inodes=80,backup=26h).",
    ),
    crit: str = typer.Option(
        None,
        "--crit",
        "-c",
        help="CRITICAL thresholds, same form (default load=4,disk=90,inodes=90,backup=50h).",
    ),
) -> None:
    """Judge the cluster as a monitoring plugin: SSH reachability, role health, load, disk and
    inode use per data dir, backup age and a lock left past its TTL. Prints one line
    `KATO STATE - summary | perfdata` (then one line per problem) and exits 0 OK, 1 WARNING,
    2 CRITICAL or 3 UNKNOWN.
    """
    try:
        from kato import check as judge
        from kato import monitor

        cluster, pick = load_chosen(parallel, node, role)
        warn_at = judge.thresholds(warn, judge.WARN, "--warn")
        crit_at = judge.thresholds(crit, judge.CRIT, "--crit")
        verdict = judge.judge(
            monitor.snapshot(cluster, pick.node_list, pick.role_list), warn_at, crit_at
        )
    except KatoError as exc:
        from kato.check import plugin_text  # the domain loads when a command runs

        output.line(f"KATO UNKNOWN - {plugin_text(exc.message)}")
        raise typer.Exit(UNKNOWN) from None
    except KeyboardInterrupt:
        output.line("KATO UNKNOWN - interrupted")
        raise typer.Exit(UNKNOWN) from None
    output.line(verdict.line)
    for problem in verdict.problems:
        output.line(problem)
    raise typer.Exit(verdict.state)
