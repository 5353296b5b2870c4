"""`kato node list|trust`: the cluster's nodes and the host keys kato trusts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kato import output
from kato.cli.common import DRY_RUN, JSON, NODES, PARALLEL, ROLES, load_chosen, load_cluster
from kato.cli.errors import reported
from kato.errors import UsageError

if TYPE_CHECKING:
    from kato.node_trust import BulkTrust, NodeKey
    from kato.transport.ssh_connect import OfferedKey

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


def _confirm_typed(keys: tuple[NodeKey, ...]) -> bool:
    """The fingerprints on stderr, then a typed `yes` (only on a terminal)."""
    output.info("the nodes offer these keys:")
    for key in keys:
        output.info(f"  {key.node:<12} {key.hostname:<24} {key.key_type} {key.fingerprint}")
    if not sys.stdin.isatty():
        return False
    answer = typer.prompt(f"Type yes to trust these {len(keys)} keys", default="", err=True)
    return bool(answer.strip() == "yes")


@app.command()
def trust(
    node: list[str] = NODES,
    every: bool = typer.Option(
        False, "--all", help="Every node of the cluster file (the default)."
    ),
    parallel: int = PARALLEL,
    fingerprint: list[str] = typer.Option(
        None,
        "--fingerprint",
        help="A SHA256:... fingerprint you expect (checked out of band; repeatable). "
        "Keys are recorded only when each matches one.",
    ),
    fingerprints: Path = typer.Option(
        None,
        "--fingerprints",
        help="A file of expected fingerprints (e.g. `ssh-keygen -lf` output of every node).",
    ),
    known_hosts: Path = typer.Option(
        None,
        "--from-known-hosts",
        help="Take the nodes' keys from this OpenSSH known_hosts (hashed lines too), "
        "connecting to nothing.",
    ),
    dry_run: bool = DRY_RUN,
    as_json: bool = JSON,
) -> None:
    """Show nodes' host key fingerprints and record them in kato's known_hosts: when each
    matches a fingerprint given, after you confirm, or from a known_hosts you trust.
    """
    with reported():
        from kato import node as single
        from kato import node_trust

        cluster, pick = load_chosen(parallel, node)
        if every and pick.nodes:
            raise UsageError(
                "--all and --node choose differently: give one",
                hint="kato node trust --node node1, or kato node trust --all",
            )
        every = not pick.nodes
        chosen = tuple(cluster.node(n) for n in pick.nodes) if pick.nodes else cluster.nodes
        expected = set(fingerprint or [])
        if fingerprints is not None:
            expected |= node_trust.fingerprints_in(_read(fingerprints))
        if known_hosts is not None:
            result = node_trust.from_known_hosts(cluster, chosen, known_hosts, dry_run)
        elif len(chosen) == 1 and not every and len(expected) <= 1 and not dry_run:
            one = single.trust(cluster, chosen[0].name, next(iter(expected), None), _ask)
            if as_json:
                output.document(one)
            what = "recorded" if one.changed else "already recorded"
            output.info(f"{one.node}: {one.key_type} {one.fingerprint} {what} in {one.known_hosts}")
            return
        else:
            result = node_trust.trust_all(cluster, chosen, expected, _confirm_typed, dry_run)
    _render_bulk(result, as_json)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _render_bulk(result: BulkTrust, as_json: bool) -> None:
    if as_json:
        output.document(result)
    else:
        verb = "would record" if result.dry_run else "recorded"
        output.table(
            ("NODE", "KNOWN AS", "TYPE", "FINGERPRINT", ""),
            [(k.node, k.hostname, k.key_type, k.fingerprint, verb) for k in result.keys],
        )
        for f in result.failed:
            output.warn(f"{f.node}: {f.phase}: {f.message}")
        if not result.dry_run:
            output.info(f"{result.changed} host name(s) changed in {result.known_hosts}")
    raise typer.Exit(result.exit_code)


@app.command()
def show(
    node: list[str] = NODES,
    role: list[str] = ROLES,
    parallel: int = PARALLEL,
    as_json: bool = JSON,
) -> None:
    """Each chosen node in detail: address, roles, platform version, units and health, data
    dirs."""
    with reported():
        from kato import status as cluster_status

        cluster, pick = load_chosen(parallel, node, role)
        result = cluster_status.status(cluster, pick.node_list, pick.role_list)
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
    node: list[str] = NODES,
    role: list[str] = ROLES,
    parallel: int = PARALLEL,
    as_json: bool = JSON,
) -> None:
    """Run each role's read-only testinfra checks on the nodes carrying it (exit 1 if any
    check fails)."""
    with reported():
        from kato import node_check

        cluster, pick = load_chosen(parallel, node, role)
        checks = node_check.check(cluster, pick.node_list, pick.role_list)
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
