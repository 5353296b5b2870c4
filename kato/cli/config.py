"""`kato config show|validate`: the effective cluster configuration."""

from __future__ import annotations

import typer

from kato import output
from kato.cli.common import JSON, load_cluster
from kato.cli.errors import reported

app = typer.Typer(help="Show and check the cluster file.", no_args_is_help=True)


@app.command()
def show(as_json: bool = JSON) -> None:
    """Print the effective configuration (file, then KATO_* variables, then flags)."""
    with reported():
        cluster = load_cluster()
    if as_json:
        output.document(cluster)
        return
    output.line(f"cluster {cluster.name} (core {cluster.core}) from {cluster.path}")
    ssh = cluster.ssh
    output.line(
        f"ssh: user {ssh.user}, known_hosts {ssh.known_hosts}, identity "
        f"{ssh.identity_file or '(default keys)'}, timeouts connect {ssh.connect_timeout:g}s"
        f" auth {ssh.auth_timeout:g}s command {ssh.command_timeout:g}s, "
        f"parallel {ssh.parallel}"
    )
    output.table(
        ("NODE", "ADDRESS", "PORT", "ROLES"),
        [(n.name, n.address, str(n.port), ",".join(n.roles)) for n in cluster.nodes],
    )


@app.command()
def validate(as_json: bool = JSON) -> None:
    """Check the cluster file; list every problem (exit 2) or say it is valid."""
    with reported():
        cluster = load_cluster()
    if as_json:
        output.document(
            {"path": cluster.path, "valid": True, "nodes": len(cluster.nodes), "core": cluster.core}
        )
        return
    output.info(f"{cluster.path}: valid ({len(cluster.nodes)} nodes, core {cluster.core})")
