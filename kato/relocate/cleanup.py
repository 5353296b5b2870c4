"""`kato relocate cleanup`: remove the old copies a relocation kept. An old copy at a data dir's
declared path is emptied, not removed (the units bind the new location onto it); a path that
some data dir uses now, or a relocation under way, is never touched."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from kato import role_definitions
from kato.config import Cluster
from kato.connect import connections
from kato.datadirs import Locations, locations
from kato.operation import operation
from kato.relocate.facts import run_program
from kato.relocate.steps import RelocationFailed
from kato.relocate.targets import is_within
from kato.roles import Role

# Empty a directory without following anything: find never follows symlinks (-P), stays on
# its filesystem (-xdev) and deletes depth first.
EMPTY = ("find", "-P", "{}", "-xdev", "-mindepth", "1", "-delete")
REMOVE = ("rm", "-rf", "--one-file-system", "--")


@dataclass(frozen=True)
class OldCopy:
    node: str
    role: str
    name: str
    path: str
    emptied_only: bool  # the declared path: kept as the mount point, emptied


@dataclass
class CleanupResult:
    copies: list[OldCopy] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    dry_run: bool = False


def old_copies(
    node: str, where: Locations, roles: Mapping[str, Role], skipped: list[str]
) -> list[OldCopy]:
    """The node's old copies that may go: none that a data dir or a move uses now."""
    current = [p for r in roles.values() for p in where.of(r).values()]
    current += [dest for names in where.moving.values() for dest, _ in names.values()]
    found = []
    for role, names in where.previous.items():
        for name, paths in names.items():
            declared = roles[role].data_dirs.get(name) if role in roles else None
            for path in paths:
                overlaps = [u for u in current if is_within(u, path) or is_within(path, u)]
                # the declared path holds the bind mounts' target dir, nothing else of ours
                if path in current or (overlaps and path != declared):
                    skipped.append(f"{node}: {path} (in use by {', '.join(overlaps)})")
                    continue
                found.append(OldCopy(node, role, name, path, path == declared))
    return found


def cleanup(
    cluster: Cluster,
    nodes: list[str],
    *,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    command: list[str] | None = None,
) -> CleanupResult:
    result = CleanupResult(dry_run=dry_run)
    chosen = nodes or [n.name for n in cluster.nodes]
    with connections(cluster) as conns:
        defined = role_definitions.of_nodes(cluster, conns, chosen)  # each node: its release's
        found: dict[str, list[OldCopy]] = {}
        for node in chosen:
            where = locations(conns.get(node))
            found[node] = old_copies(node, where, defined.of(node), result.skipped)
            result.copies.extend(found[node])
        if dry_run or not result.copies:
            return result
        core = cluster.core_node.name
        with operation(conns, core, command or [], lock_wait=lock_wait) as op:
            for node, copies in found.items():
                t = conns.get(node)
                for copy in copies:
                    started = time.monotonic()
                    argv = tuple(a.replace("{}", copy.path) for a in EMPTY) if copy.emptied_only \
                        else (*REMOVE, copy.path)  # fmt: skip
                    done = t.run(argv, timeout=24 * 3600, check=False)
                    op.step(node, f"remove the old copy {copy.path}", argv,
                            "ok" if done.ok else f"exit {done.status}",
                            time.monotonic() - started)  # fmt: skip
                    if not done.ok:
                        raise RelocationFailed(
                            f"{node}: removing the old copy {copy.path} failed: {done.error_line}",
                            hint="see what is left there; run kato relocate cleanup again",
                        )
                    run_program(t, "datadirs", "forget", copy.role, copy.name, copy.path)
    return result
