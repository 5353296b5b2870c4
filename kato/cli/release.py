"""`kato release list|show|prune`: the release repository's versions and where they are."""

from __future__ import annotations

import typer

from kato import output
from kato.cli.common import DRY_RUN, JSON, LOCK_WAIT, PARALLEL, invocation, load_cluster, seconds
from kato.cli.errors import reported
from kato.cli.results import exit_for, failure_rows

app = typer.Typer(help="Platform releases: list, show, prune.", no_args_is_help=True)
REPO = typer.Option(None, "--repo", help="The release repository (default: the cluster file's).")


@app.command("list")
def list_(repo: str = REPO, parallel: int = PARALLEL, as_json: bool = JSON) -> None:
    """Every version of the repository with the sha256 of its manifest, and per node whether it
    is current, previous, installed, staged or absent. Exit 3 if some nodes did not answer."""
    with reported():
        from kato.upgrade import catalog

        result = catalog.list_releases(load_cluster(parallel), repo)
    if as_json:
        output.document(result)
        raise typer.Exit(3 if result.unreachable else 0)
    nodes = sorted({n for r in result.releases for n in r.nodes})
    rows = [
        (
            r.version,
            r.digest[:12],
            str(r.migrations),
            *(("changed!" if n in r.changed else r.nodes[n]) for n in nodes),
        )
        for r in result.releases
    ]
    output.table(
        ("VERSION", "DIGEST", "MIGRATIONS", *(n.upper() for n in nodes)),
        rows,
        title=f"{result.platform} releases in {result.repository} (running: {result.running})",
    )
    for node, versions in result.on_nodes_only.items():
        output.line(f"{node} also holds {', '.join(versions)}, which the repository does not list")
    if any(r.changed for r in result.releases):
        output.warn(
            "changed!: the node staged this version with another manifest digest; the "
            "repository changed since (stage it again after checking why)"
        )
    if result.unreachable:
        output.table(
            ("NODE", "PHASE", "ERROR"), failure_rows({f.node: f for f in result.unreachable})
        )
        raise typer.Exit(3)


@app.command("show")
def show(
    version: str = typer.Argument(..., help="The release to describe."),
    repo: str = REPO,
    parallel: int = PARALLEL,
    as_json: bool = JSON,
) -> None:
    """What VERSION changes compared with the release the cluster runs: role by role (artifact
    digest changed: redeployed; unchanged: untouched), its migrations and its notes."""
    with reported():
        from kato.upgrade import catalog

        result = catalog.show(load_cluster(parallel), version, repo)
    if as_json:
        output.document(result)
        return
    output.line(f"release {result.version} (digest {result.digest})")
    output.line(f"running: {result.running or 'nothing'} ({result.direction}); kato {result.kato}")
    rows = [
        (
            c.role,
            c.action,
            (c.old_sha256 or "-")[:12],
            (c.new_sha256 or "-")[:12],
            ", ".join(c.definition) or "-",
        )
        for c in result.roles
    ]
    output.table(("ROLE", "ACTION", "FROM", "TO", "DEFINITION CHANGES"), rows)
    for migration in result.migrations:
        output.line(f"migration {migration.name} ({migration.role}): {migration.description}")
    for migration in result.undone:
        output.line(
            f"going back undoes migration {migration.name} ({migration.role}): "
            "the data is restored from the pre-upgrade export"
        )
    if not result.migrations and not result.undone:
        output.line("migrations: none")
    if result.notes:
        output.line(f"notes: {result.notes}")


@app.command("prune")
def prune(
    keep: int = typer.Option(2, "--keep", help="How many of the newest releases to keep."),
    dry_run: bool = DRY_RUN,
    lock_wait: str = LOCK_WAIT,
    parallel: int = PARALLEL,
    as_json: bool = JSON,
) -> None:
    """Remove old releases from every node: the current and the previous one always stay
    (rollback needs no download), and so do the KEEP newest. Exit 3 if some nodes failed."""
    with reported():
        from kato.upgrade import prune as pruning

        result = pruning.prune(
            load_cluster(parallel),
            keep,
            dry_run=dry_run,
            lock_wait=seconds(lock_wait),
            command=invocation(),
        )
    if as_json:
        output.document(result)
    else:
        verb = "would remove" if dry_run else "removed"
        for node, versions in result.removals.items():
            output.line(f"{node}: {verb} {', '.join(versions) or 'nothing'}")
        if result.failed:
            output.table(("NODE", "PHASE", "ERROR"), failure_rows(result.failed))
    raise typer.Exit(0 if dry_run else exit_for(result.removals, result.failed))
