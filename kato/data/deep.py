"""`kato data verify --deep`: every dump also loaded by its role's own check on a node."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from kato import role_definitions
from kato.config import Cluster, DataLimits
from kato.connect import connections
from kato.data.manifest import Member
from kato.data.verify import ArchiveInvalid, VerifyResult, verify_archive
from kato.progress import Progress, SilentProgress
from kato.role_definitions import role_of


def verify_deep(
    cluster: Cluster,
    path: Path | str,
    *,
    progress: Progress | None = None,
    within: DataLimits | None = None,
) -> VerifyResult:
    """verify_archive, with each stream member piped into its role's `check` on a node that
    carries the role (the check loads it into a scratch instance and removes it)."""
    progress = progress or SilentProgress()
    with connections(cluster) as conns:
        everyone = [n.name for n in cluster.nodes]
        defined = role_definitions.of_nodes(cluster, conns, everyone)  # each its release's

        def visit(member: Member, stream: IO[bytes]) -> None:
            carriers = [n.name for n in cluster.with_role(member.role)]
            if not carriers:
                raise ArchiveInvalid(
                    str(path), member.name, f"no node of {cluster.name} carries {member.role}"
                )
            node = member.node if member.node in carriers else carriers[0]
            role = role_of(defined, node, member.role)
            spec = role.export.get(member.data_dir) if role else None
            if spec is None or not spec.check:
                progress.warn(f"{member.name}: role {member.role} has no check; not loaded")
                return
            progress.step(f"{node}: loading {member.name} into a scratch {member.role}")
            done = conns.get(node).stream_in(spec.check, stream)  # type: ignore[arg-type]
            if not done.ok:
                last = done.error_line
                raise ArchiveInvalid(str(path), member.name, f"does not restore on {node}: {last}")

        return verify_archive(path, progress=progress, visit=visit, within=within or cluster.data)
