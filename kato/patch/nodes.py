"""What kato knows of patches on a node: the agent program it runs there and what it reports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from kato.config import NodeConfig
from kato.errors import RemoteCommandFailed
from kato.plan import Step
from kato.remote import safe_write
from kato.roles import Role
from kato.transport.base import CommandResult, Transport

PATCHES = "/var/lib/kato/patches"
STAGING = "/var/lib/kato/staging"


@cache
def agent_source() -> str:
    """kato/patch/agent.py, handed to the node's python3 on stdin after the safe-write
    functions it uses (kato/remote/safe_write.py)."""
    agent = Path(__file__).with_name("agent.py").read_text()
    agent = agent.replace("from __future__ import annotations\n", "", 1)
    return safe_write.library_source() + agent


def agent_argv(command: str, *args: str) -> tuple[str, ...]:
    return ("python3", "-", "/", command, *args)


def agent_step(node: str, description: str, command: str, *args: str) -> Step:
    return Step(node, description, agent_argv(command, *args), stdin=agent_source())


@dataclass(frozen=True)
class Applied:
    """One node's record of a patch (/var/lib/kato/patches/NAME.json)."""

    name: str
    sha256: str
    version: str
    roles: tuple[str, ...]
    applied_at: float
    restart_pending: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodePatches:
    node: str
    version: str | None
    applied: dict[str, Applied] = field(default_factory=dict)
    interrupted: tuple[str, ...] = ()


def parse_state(node: str, result: CommandResult) -> NodePatches:
    if not result.ok:
        raise RemoteCommandFailed(node, result.argv, result.status, result.stderr)
    raw: dict[str, Any] = json.loads(result.stdout)
    applied = {
        name: Applied(
            name,
            str(record.get("sha256", "")),
            str(record.get("version", "")),
            tuple(record.get("roles", ())),
            float(record.get("applied_at", 0)),
            tuple(record.get("restart_pending", ())),
        )
        for name, record in raw["records"].items()
    }
    return NodePatches(node, raw["version"], applied, tuple(raw["interrupted"]))


def gather(transport: Transport, node: NodeConfig, roles: dict[str, Role]) -> NodePatches:
    units = {r: list(roles[r].units) for r in node.roles if r in roles}
    result = transport.run(
        agent_argv("state", json.dumps(units)),
        stdin=agent_source().encode(),
        check=False,
        timeout=60,
    )
    return parse_state(node.name, result)
