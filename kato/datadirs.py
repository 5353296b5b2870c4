"""Where each role's data dirs live on a node: the one place kato resolves a data dir.

A role declares its data dirs in role.yaml; `kato relocate` may move one, and records that in
/var/lib/kato/datadirs.yaml on the node (the units see it through a systemd drop-in). Every
command that touches a data dir (status, export, import, install, relocate) asks here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kato.errors import KatoError
from kato.remote import layout
from kato.remote.agent import AGENT
from kato.roles import Role
from kato.transport.base import CommandResult, Transport

RECORD = layout.DATADIRS
# `kato node check` hands the role checks each node's data dirs (JSON: role -> name -> path)
CHECK_ENV = "KATO_CHECK_DATA_DIRS"


def call(transport: Transport, command: str, *args: str, timeout: float = 60) -> CommandResult:
    """Run kato/remote/datadirs.py COMMAND on the node (through the node agent)."""
    return AGENT.call(transport, "datadirs.py", "/", command, *args, timeout=timeout)


class RecordUnreadable(KatoError):
    def __init__(self, node: str, detail: str) -> None:
        super().__init__(
            f"{node}: cannot read where the data dirs live ({RECORD}): {detail}",
            hint=f"look at {RECORD} on {node}; docs/relocate.md describes it",
        )


@dataclass(frozen=True)
class Locations:
    """One node's record: the moved data dirs, the old copies kept until cleanup, and the
    relocations under way (role → name → (dest, phase))."""

    moved: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # role → name → path
    previous: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    moving: Mapping[str, Mapping[str, tuple[str, str]]] = field(default_factory=dict)

    def of(self, role: Role) -> dict[str, str]:
        """Every data dir of `role` → where it lives on this node now."""
        return {name: self.path(role.name, name, path) for name, path in role.data_dirs.items()}

    def path(self, role: str, name: str, declared: str) -> str:
        """Where `role`'s data dir `name` (declared at `declared`) lives on this node now."""
        return self.moved.get(role, {}).get(name, declared)


def parse(node: str, text: str) -> Locations:
    """The agent's `locations` output (the record as JSON), checked."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise RecordUnreadable(node, f"not JSON ({exc})") from None
    return from_document(node, raw)


def from_document(node: str, raw: Any) -> Locations:
    """The record as node_facts.py or datadirs.py return it, checked."""
    if isinstance(raw, dict) and "error" in raw:
        raise RecordUnreadable(node, str(raw["error"]))
    try:
        moved = {
            str(role): {str(name): str(entry["path"]) for name, entry in names.items()}
            for role, names in raw["data_dirs"].items()
        }
        previous = {
            str(role): {str(name): tuple(str(p) for p in paths) for name, paths in names.items()}
            for role, names in raw.get("previous", {}).items()
        }
        moving = {
            str(role): {str(n): (str(e["dest"]), str(e["phase"])) for n, e in names.items()}
            for role, names in raw.get("moving", {}).items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RecordUnreadable(node, f"unexpected content ({exc})") from None
    return Locations(moved, previous, moving)


def locations(transport: Transport) -> Locations:
    """The node's record (an absent record: every data dir at its declared path)."""
    done = call(transport, "locations")
    if not done.ok:
        raise RecordUnreadable(transport.node, done.error_line)
    return parse(transport.node, done.stdout)


def hook_env(where: Locations, role: Role) -> dict[str, str]:
    """`KATO_DATA_<NAME>` → where each of `role`'s data dirs lives now: the environment an
    install hook gets (by `kato install` and by an upgrade's activation), so a hook writes
    into a relocated data dir, not the empty one at its declared path."""
    return {f"KATO_DATA_{n.upper().replace('-', '_')}": p for n, p in where.of(role).items()}


def located(transport: Transport, role: Role) -> dict[str, str]:
    """Every data dir of `role` on this node → where it lives now."""
    return locations(transport).of(role)
