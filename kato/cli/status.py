"""`kato status` and `kato version`: the cluster at a glance."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from kato import __version__, output
from kato.cli.common import JSON, NODES, PARALLEL, ROLES, load_chosen, load_cluster
from kato.cli.errors import reported
from kato.cli.results import exit_for, failure_rows


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def status(
    node: list[str] = NODES,
    role: list[str] = ROLES,
    parallel: int = PARALLEL,
    prometheus: Path = typer.Option(
        None,
        "--prometheus",
        help="Also write node_exporter textfile metrics to this .prom file (atomically).",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Also say where each node's role definitions come from."
    ),
    as_json: bool = JSON,
) -> None:
    """Every node in parallel: roles, unit states, health, platform version, data dir space,
    the lock, and whether a newer release is available. Exit 3 if some nodes did not answer,
    1 if a role is unhealthy."""
    with reported():
        from kato import status as cluster_status
        from kato.upgrade import catalog

        cluster, pick = load_chosen(parallel, node, role)
        if prometheus is None:
            result = cluster_status.status(cluster, pick.node_list, pick.role_list)
        else:
            from kato import monitor
            from kato import prometheus as textfile

            snap = monitor.snapshot(cluster, pick.node_list, pick.role_list)
            textfile.write(prometheus, textfile.render(snap))
            result = snap.status
        update, problem = catalog.update_for(cluster, [n.version for n in result.nodes])
    if as_json:
        document = dataclasses.asdict(result)
        document["update"] = dataclasses.asdict(update) if update else None
        output.document(document)
        raise typer.Exit(result.exit_code)
    if verbose:
        for n in result.nodes:
            output.info(f"{n.name}: role definitions from {n.definitions}")
    rows = []
    for n in result.nodes:
        for r in n.roles or ():
            units = ", ".join(f"{u} {s}" for u, s in r.units.items())
            rows.append((n.name, n.version or "-", r.role, units, r.health))
        if not n.roles:
            rows.append((n.name, n.version or "-", "-", "", ""))
    output.table(
        ("NODE", "VERSION", "ROLE", "UNITS", "HEALTH"), rows, title=f"cluster {result.cluster}"
    )
    dirs = [
        (n.name, d.role, d.name, d.path, _size(d.free_bytes) if d.exists else "missing")
        for n in result.nodes
        for d in n.data_dirs
    ]
    if dirs:
        output.table(("NODE", "ROLE", "DATA DIR", "PATH", "FREE"), dirs)
    if result.unreachable:
        output.table(
            ("NODE", "PHASE", "ERROR"), failure_rows({f.node: f for f in result.unreachable})
        )
    if result.lock:
        output.line(
            f"lock: held by {result.lock.get('owner')} running "
            f"`{result.lock.get('command')}` (id {result.lock.get('id')})"
        )
    elif result.lock_error:
        output.line(f"lock: unknown ({result.lock_error})")
    elif result.lock_expired:
        gone = result.lock_expired
        output.line(
            f"lock: free (the record of {gone.get('owner')} running `{gone.get('command')}` "
            f"(id {gone.get('id')}) stopped its heartbeat at {gone.get('heartbeat_at')}; the "
            "next command takes it over and names its last journaled step)"
        )
    else:
        output.line("lock: free")
    if update:
        output.line(
            f"update available: {update.version} (redeploys {', '.join(update.roles) or 'no role'}"
            f"; see `kato release show {update.version}` and `kato upgrade plan {update.version}`)"
        )
    elif problem:
        output.line(f"update: unknown ({problem})")
    raise typer.Exit(result.exit_code)


def version(parallel: int = PARALLEL, as_json: bool = JSON) -> None:
    """kato's own version and the platform version on each node (warns when they differ)."""
    with reported():
        from kato import status as cluster_status

        result = cluster_status.versions(load_cluster(parallel))
    versions = result.nodes
    if as_json:
        output.document(
            {
                "kato": __version__,
                "nodes": versions,
                "unreachable": [f.node for f in result.unreachable],
            }
        )
    else:
        output.line(f"kato {__version__}")
        output.table(("NODE", "PLATFORM"), [(n, v or "not installed") for n, v in versions.items()])
    if len({v for v in versions.values() if v}) > 1:
        output.warn(
            "the nodes run different platform versions: "
            + ", ".join(f"{n} {v}" for n, v in versions.items())
        )
    if result.unreachable:
        refused = [f.node for f in result.unreachable if f.phase == "host key"]
        silent = [f.node for f in result.unreachable if f.phase != "host key"]
        if refused:
            output.warn("host key refused: " + ", ".join(refused))
        if silent:
            output.warn("no answer from " + ", ".join(silent))
        raise typer.Exit(exit_for(versions, {f.node: f for f in result.unreachable}))
