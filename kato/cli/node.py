"""`kato node list|trust`: the cluster's nodes and the host keys kato trusts."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from kato import output
from kato.cli.common import JSON, load_cluster
from kato.cli.errors import reported

if TYPE_CHECKING:
    from kato.transport.ssh import OfferedKey

app = typer.Typer(help="The cluster's nodes.", no_args_is_help=True)


@app.command("list")
def list_nodes(as_json: bool = JSON) -> None:
    """List the nodes of the cluster file with their roles."""
    with reported():
        cluster = load_cluster()
    rows = [
        (
            n.name,
            n.address,
            str(n.port),
            ",".join(n.roles),
            "core" if n.name == cluster.core else "",
        )
        for n in cluster.nodes
    ]
    if as_json:
        output.document(
            [dict(zip(("name", "address", "port", "roles", "core"), r, strict=True)) for r in rows]
        )
        return
    output.table(("NODE", "ADDRESS", "PORT", "ROLES", ""), rows)


def _ask(offered: OfferedKey) -> bool:
    output.info(f"the node offers {offered.key_type} key {offered.fingerprint}")
    if not sys.stdin.isatty():
        return False
    return typer.confirm("Trust this key?", default=False, err=True)


@app.command()
def trust(
    node: str = typer.Argument(..., help="The node whose host key to record."),
    fingerprint: str = typer.Option(
        None,
        "--fingerprint",
        help="The SHA256:... fingerprint "
        "you expect (checked out of band); recorded only on a match.",
    ),
) -> None:
    """Show NODE's host key fingerprint and record it in kato's known_hosts when it matches
    --fingerprint or you confirm it."""
    with reported():
        from kato import node as nodes

        result = nodes.trust(load_cluster(), node, fingerprint, _ask)
    what = "recorded" if result.changed else "already recorded"
    output.info(
        f"{result.node}: {result.key_type} {result.fingerprint} {what} in {result.known_hosts}"
    )


@app.command()
def show(node: str = typer.Argument(..., help="The node to show."), as_json: bool = JSON) -> None:
    """One node: address, roles, platform version, units and health, data dirs."""
    with reported():
        from kato import status as cluster_status

        result = cluster_status.status(load_cluster(), [node])
    if as_json:
        output.document(result)
        raise typer.Exit(result.exit_code)
    for n in result.nodes:
        output.line(f"{n.name} {n.address}, platform {n.version or 'not installed'}")
        output.table(
            ("ROLE", "UNITS", "HEALTH"),
            [
                (r.role, ", ".join(f"{u} {s}" for u, s in r.units.items()), r.health)
                for r in n.roles
            ],
        )
        output.table(
            ("ROLE", "DATA DIR", "PATH", "EXISTS"),
            [(d.role, d.name, d.path, "yes" if d.exists else "no") for d in n.data_dirs],
        )
    for f in result.unreachable:
        output.line(f"{f.node}: unreachable in phase {f.phase}: {f.message}")
    raise typer.Exit(result.exit_code)


@app.command()
def check(
    node: list[str] = typer.Argument(None, help="Nodes to check (default: all)."),
    as_json: bool = JSON,
) -> None:
    """Run each role's read-only testinfra checks on the nodes carrying it (exit 1 if any
    check fails)."""
    with reported():
        from kato import node_check

        checks = node_check.check(load_cluster(), node or None)
    if as_json:
        output.document(checks)
    else:
        output.table(
            ("NODE", "ROLE", "CHECK", "RESULT"),
            [
                (c.node, c.role, c.name, "pass" if c.passed else f"FAIL: {c.message}")
                for c in checks
            ],
        )
    raise typer.Exit(0 if all(c.passed for c in checks) else 1)
