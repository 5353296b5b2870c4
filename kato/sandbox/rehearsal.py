"""`kato sandbox up --from-archive ARCHIVE`: a sandbox shaped like the cluster an archive came
from (the same roles on as many nodes, the same platform version) with the archive imported, so
an upgrade can be rehearsed on production's data before production (docs/upgrade.md)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from kato import config
from kato.data.import_ import import_archive
from kato.data.verify import verify_archive
from kato.errors import PreflightRefused
from kato.progress import Progress
from kato.sandbox import clusterfile
from kato.sandbox.model import MAX_NODES, Sandbox, roles_for

RELEASES_FILE = Path(__file__).resolve().parents[2] / "roles" / "releases.yaml"


@dataclass(frozen=True)
class Rehearsal:
    archive: str
    cluster: str
    version: str
    carriers: dict[str, int]  # role -> how many nodes of the archive's cluster hold its data


def layout(count: int) -> Counter[str]:
    return Counter(role for i in range(1, count + 1) for role in roles_for(i, count))


def known_versions() -> list[str]:
    try:
        raw = yaml.safe_load(RELEASES_FILE.read_text())
    except OSError:
        return []
    return [str(v["version"]) for v in raw.get("versions", [])]


def read(archive: str, count: int, progress: Progress) -> Rehearsal:
    """The archive verified whole, and its shape checked against a sandbox of `count` nodes,
    before anything is made (exit 6 for a bad archive, 7 when the shapes differ)."""
    progress.step(f"verifying {archive}")
    manifest = verify_archive(archive, progress=progress).manifest
    version = manifest.platform_version
    if version is None or version not in known_versions():
        raise PreflightRefused(
            f"the archive comes from platform {version or 'unknown'}, which the reference "
            "platform does not have",
            hint=f"reference versions: {', '.join(known_versions()) or 'none'}",
        )
    carriers = Counter(role for _, role in {(m.node, m.role) for m in manifest.members})
    if any(layout(count)[r] != n for r, n in carriers.items()):
        fits = [
            k
            for k in range(1, MAX_NODES + 1)
            if all(layout(k)[r] == n for r, n in carriers.items())
        ]
        shown = ", ".join(f"{r} on {n}" for r, n in sorted(carriers.items()))
        raise PreflightRefused(
            f"the archive's cluster {manifest.cluster} has {shown} node(s); a sandbox of "
            f"{count} nodes does not",
            hint=f"pass --nodes {fits[0]}" if fits else "no sandbox layout has that shape",
        )
    return Rehearsal(archive, manifest.cluster, version, dict(carriers))


def restore(sandbox: Sandbox, rehearsal: Rehearsal, progress: Progress) -> None:
    """Import the archive into the freshly provisioned sandbox."""
    cluster = config.load(str(clusterfile.cluster_path(sandbox)), env={})
    progress.step(f"importing {rehearsal.archive} (cluster {rehearsal.cluster})")
    import_archive(
        cluster,
        rehearsal.archive,
        command=["kato", "sandbox", "up", "--name", sandbox.name, "--from-archive"],
        progress=progress,
    )
