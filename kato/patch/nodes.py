"""What kato knows of patches on a node: the patch agent (shipped by the node agent) and what it
reports."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kato.config import NodeConfig
from kato.errors import RemoteCommandFailed
from kato.plan import Step
from kato.remote import layout
from kato.remote.agent import AGENT
from kato.roles import Role
from kato.transport.base import CommandResult, Transport

PATCHES = layout.PATCHES
STAGING = layout.STAGING


def agent_argv(command: str, *args: str) -> tuple[str, ...]:
    """kato/patch/agent.py as the node agent ships it (AGENT.ensure before running it)."""
    return AGENT.argv("patch_agent.py", "/", command, *args)


def agent_step(node: str, description: str, command: str, *args: str) -> Step:
    return Step(node, description, agent_argv(command, *args))


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
    return state_of(node, json.loads(result.stdout))


def state_of(node: str, raw: dict[str, Any]) -> NodePatches:
    """The state as the patch agent (or node_facts.py, asked for `patches`) reports it."""
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


def units_of(node: NodeConfig, roles: Mapping[str, Role]) -> dict[str, list[str]]:
    """The units of the node's roles (a restart pending is read from their start times)."""
    return {r: list(roles[r].units) for r in node.roles if r in roles}


def gather(transport: Transport, node: NodeConfig, roles: dict[str, Role]) -> NodePatches:
    units = units_of(node, roles)
    result = AGENT.call(transport, "patch_agent.py", "/", "state", json.dumps(units), timeout=60)
    return parse_state(node.name, result)
