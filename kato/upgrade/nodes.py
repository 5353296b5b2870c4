"""What kato knows of releases on a node: its release program (kato/upgrade/agent.py, shipped in
the node agent's bundle, kato/remote/agent.py) and what it reports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kato.errors import RemoteCommandFailed
from kato.remote.agent import AGENT
from kato.transport.base import CommandResult, Transport

RELEASES = "/var/lib/kato/releases"
STAGING = "/var/lib/kato/staging"


PROGRAM = "upgrade_agent.py"  # kato/upgrade/agent.py in the node agent's bundle


def run_agent(transport: Transport, command: str, *args: str, timeout: float = 600) -> str:
    """Run one agent command; its stdout, or RemoteCommandFailed with its own words."""
    result = AGENT.call(transport, PROGRAM, "/", command, *args, timeout=timeout)
    if not result.ok:
        raise RemoteCommandFailed(transport.node, result.argv, result.status, result.stderr)
    return result.stdout


@dataclass(frozen=True)
class RoleCopy:
    """One role of one version on a node: the sha256 of its staged and installed artifact."""

    staged: str
    installed: str


@dataclass(frozen=True)
class VersionOnNode:
    roles: dict[str, RoleCopy]
    digest: str | None

    def has(self, role: str, sha256: str) -> bool:
        copy = self.roles.get(role)
        return copy is not None and sha256 in (copy.staged, copy.installed)


@dataclass(frozen=True)
class NodeReleases:
    node: str
    current: str | None
    previous: str | None
    versions: dict[str, VersionOnNode] = field(default_factory=dict)
    free: int = 0

    def state_of(self, version: str) -> str:
        """current, previous, installed (hooks ran), staged (unpacked only) or absent."""
        if version == self.current:
            return "current"
        if version == self.previous:
            return "previous"
        found = self.versions.get(version)
        if found is None or not found.roles:
            return "absent"
        if all(c.installed for c in found.roles.values()):
            return "installed"
        return "staged"


def parse_facts(node: str, result: CommandResult) -> NodeReleases:
    if not result.ok:
        raise RemoteCommandFailed(node, result.argv, result.status, result.stderr)
    raw: dict[str, Any] = json.loads(result.stdout)
    versions = {
        version: VersionOnNode(
            {r: RoleCopy(c["staged"], c["installed"]) for r, c in entry["roles"].items()},
            entry.get("digest"),
        )
        for version, entry in raw["versions"].items()
    }
    return NodeReleases(node, raw["current"], raw["previous"], versions, int(raw["free"]))


def gather(transport: Transport) -> NodeReleases:
    return parse_facts(transport.node, AGENT.call(transport, PROGRAM, "/", "facts", timeout=60))
