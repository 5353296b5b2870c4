"""Helpers of the tests that resolve role definitions per node (role_definitions, relocate,
node check): a small two-node cluster and the role.yaml texts a release's nodes hold."""

from __future__ import annotations

import tarfile
from pathlib import Path

from kato.config import Cluster, parse
from kato.release import load_release


def cluster(releases: Path | None = None) -> Cluster:
    document: dict[str, object] = {
        "name": "c",
        "core": "n1",
        "nodes": [
            {"name": "n1", "address": "10.0.0.1", "roles": ["controller", "postgresql"]},
            {"name": "n2", "address": "10.0.0.2", "roles": ["controller", "router"]},
        ],
    }
    if releases is not None:
        document["releases"] = str(releases)
    return parse(document, "c.yaml")


def texts(release_repo: Path, version: str, tmp_path: Path) -> dict[str, str]:
    """role.yaml of every role as a node running `version` holds them (from the artifacts)."""
    release = load_release(release_repo, version)
    found = {}
    for role, artifact in release.roles.items():
        with tarfile.open(release_repo / artifact.path) as tar:
            member = tar.extractfile("role.yaml")
            assert member is not None
            found[role] = member.read().decode()
    return found
