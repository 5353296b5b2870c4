"""Which role definitions apply to a node: those carried by the release it runs.

Every release.yaml carries its roles' definitions (role.yaml), so a new version may change a
unit or a health check. kato reads them from the cluster's release repository; the roles/
source tree (KATO_ROLES) is used only for a version the repository does not carry definitions
for, or when no version is known yet.
"""

from __future__ import annotations

import os
from pathlib import Path

from kato import release as releases
from kato.config import Cluster
from kato.errors import UsageError
from kato.roles import Role, bundled_directory, load_roles

_CACHE: dict[tuple[str, str], dict[str, Role]] = {}


def roles_directory() -> Path:
    """The role definitions: $KATO_ROLES, else the ones kato carries (the wheel's package data,
    or roles/ of the checkout kato runs from)."""
    override = os.environ.get("KATO_ROLES")
    return Path(override) if override else bundled_directory()


def for_version(cluster: Cluster, version: str | None) -> dict[str, Role]:
    """The roles of `version` (from its release), else those of the roles/ source tree."""
    if version is None or not cluster.releases:
        return load_roles(roles_directory())
    key = (str(cluster.releases), version)
    if key not in _CACHE:
        try:
            found = dict(releases.load_release(cluster.releases, version).definitions)
        except UsageError:  # a version this repository does not list
            found = {}
        _CACHE[key] = found or load_roles(roles_directory())
    return _CACHE[key]


def of_release(release: releases.Release) -> dict[str, Role]:
    """A loaded release's definitions (the roles/ source tree for a release without them)."""
    return dict(release.definitions) or load_roles(roles_directory())
