"""Facts: a command to run on a node and a pure parser of its output (tested on captured text)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kato.errors import RemoteCommandFailed
from kato.remote import layout
from kato.remote import node_facts as node_side
from kato.remote.agent import AGENT
from kato.roles import Health, Role
from kato.transport.base import CommandResult, Transport

T = TypeVar("T")
RELEASES = layout.RELEASES
NODE_FILE = layout.NODE_FILE  # the node's identity, written by install


@dataclass(frozen=True)
class Fact(Generic[T]):
    argv: tuple[str, ...]
    parse: Callable[[CommandResult], T]

    def gather(self, transport: Transport, timeout: float = 60.0) -> T:
        return self.parse(transport.run(self.argv, timeout=timeout, check=False))


def _version(result: CommandResult) -> str | None:
    text = result.stdout.strip()
    return text.rsplit("/", 1)[-1] if result.ok and text else None


platform_version: Fact[str | None] = Fact(("readlink", f"{RELEASES}/current"), _version)


def unit_states(units: Sequence[str]) -> Fact[dict[str, str]]:
    """The units' states ("unknown" for one systemd said nothing of), parsed by the node
    programs' own parser of `systemctl is-active` (one parser on both sides)."""
    names = list(units)

    def parse(result: CommandResult) -> dict[str, str]:
        return node_side.parse_states(names, result.stdout)

    return Fact(node_side.states_argv(names), parse)


@dataclass(frozen=True)
class NodeFacts:
    """One node's facts from ONE node agent call (kato/remote/node_facts.py)."""

    boot_id: str
    version: str | None
    now: float
    units: dict[str, dict[str, str]]  # role -> unit -> state
    health: dict[str, str | None]  # role -> None when healthy, else what is wrong
    space: dict[str, dict[str, int | bool]]
    sizes: dict[str, int | None]
    patches: dict[str, Any] | None
    lock: dict[str, Any] | None
    datadirs: dict[str, Any] | None = None  # the data-dir record (kato.datadirs reads it)
    definitions: dict[str, str] | None = None  # role -> role.yaml text of the current release
    dirs: dict[str, Any] | None = None  # path -> mode, owner, size, dir (None: missing)


def health_request(health: Health) -> dict[str, Any]:
    request: dict[str, Any] = {"timeout": health.timeout}
    if health.http:
        request["http"] = health.http
    elif health.tcp:
        request["tcp"] = list(health.tcp)
    else:
        request["command"] = list(health.command or ("false",))
    return request


def facts_request(
    roles: Sequence[Role] = (),
    *,
    space: Sequence[str] = (),
    sizes: Sequence[str] = (),
    patches: dict[str, list[str]] | None = None,
    lock: bool = False,
    datadirs: bool = False,
) -> dict[str, Any]:
    """What node_facts.py is asked (see its docstring)."""
    request: dict[str, Any] = {
        "roles": {
            r.name: {"units": list(r.units), "health": health_request(r.health)} for r in roles
        },
        "space": list(space),
        "sizes": list(sizes),
        "lock": lock,
    }
    if patches is not None:
        request["patches"] = patches
    if datadirs:
        request["datadirs"] = True
    return request


def node_facts(
    transport: Transport,
    roles: Sequence[Role] = (),
    *,
    space: Sequence[str] = (),
    sizes: Sequence[str] = (),
    patches: dict[str, list[str]] | None = None,
    lock: bool = False,
    datadirs: bool = False,
    definitions: bool = False,
    dirs: Sequence[str] = (),
    dirs_of: Mapping[str, Sequence[str]] | None = None,
    moved_parents: bool = False,
    timeout: float = 60.0,
) -> NodeFacts:
    """Everything asked about a node, in one round trip (the agent is shipped if missing);
    node_facts.py's docstring says what each key answers."""
    request = facts_request(
        roles, space=space, sizes=sizes, patches=patches, lock=lock, datadirs=datadirs
    )
    asked = {"definitions": definitions, "dirs": list(dirs), "moved_parents": moved_parents}
    asked["dirs_of"] = {r: list(n) for r, n in (dirs_of or {}).items()}
    request.update({key: value for key, value in asked.items() if value})
    done = AGENT.call(transport, "node_facts.py", json.dumps(request), timeout=timeout)
    if not done.ok:
        raise RemoteCommandFailed(transport.node, done.argv[:2], done.status, done.stderr)
    raw: dict[str, Any] = json.loads(done.stdout)
    return NodeFacts(
        str(raw.get("boot_id", "")),
        raw.get("version"),
        float(raw.get("now", 0.0)),
        raw.get("units", {}),
        raw.get("health", {}),
        raw.get("space", {}),
        raw.get("sizes", {}),
        raw.get("patches"),
        raw.get("lock"),
        raw.get("datadirs"),
        raw.get("definitions"),
        raw.get("dirs"),
    )
