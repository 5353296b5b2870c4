"""What a relocation needs to know of a node: where its data dirs are, the paths involved
(kind, filesystem, size, free space) and whether a filesystem can carry quotas."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kato.datadirs import Locations
from kato.errors import KatoError
from kato.remote.agent import AGENT
from kato.transport.base import Transport


def run_program(
    transport: Transport, name: str, *args: str, timeout: float = 120
) -> dict[str, Any]:
    """Run kato/remote/NAME.py on the node (through the node agent; every program but treesum
    takes the root first); its JSON answer, or ProgramFailed with its last line."""
    root = () if name == "treesum" else ("/",)
    done = AGENT.call(transport, f"{name}.py", *root, *args, timeout=timeout)
    if not done.ok:
        raise ProgramFailed(transport.node, name, args, done.status, done.error_line)
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


class ProgramFailed(KatoError):
    def __init__(self, node: str, name: str, args: Sequence[str], status: int, line: str) -> None:
        self.node, self.status, self.line = node, status, line
        super().__init__(f"{node}: {line}", hint=f"kato/remote/{name}.py {args[0] if args else ''}")


@dataclass(frozen=True)
class PathInfo:
    """One path on a node as the datadirs program's `probe` saw it."""

    path: str
    kind: str  # dir, missing, symlink, other
    fstype: str
    mount: str
    device: int
    free: int
    total: int
    options: str = ""
    used: int = 0  # bytes allocated under it (dirs only)
    files: int = 0
    names: tuple[str, ...] = ()  # its first top-level entries (dirs only)


@dataclass(frozen=True)
class Quota:
    supported: bool
    why: str
    state: str


def probe(transport: Transport, paths: Sequence[str]) -> dict[str, PathInfo]:
    raw = run_program(transport, "datadirs", "probe", *dict.fromkeys(paths))
    return {path: path_info(path, found) for path, found in raw.items()}


def path_info(path: str, raw: dict[str, Any]) -> PathInfo:
    return PathInfo(
        path,
        str(raw["kind"]),
        str(raw["fstype"]),
        str(raw["mount"]),
        int(raw["device"]),
        int(raw["free"]),
        int(raw["total"]),
        str(raw.get("options", "")),
        int(raw.get("used", 0)),
        int(raw.get("files", 0)),
        tuple(str(n) for n in raw.get("names", ())),
    )


def quota(transport: Transport, where: PathInfo) -> Quota:
    raw = run_program(transport, "quota", "check", where.fstype, where.mount, where.options)
    return Quota(bool(raw["supported"]), str(raw["why"]), str(raw["state"]))


@dataclass(frozen=True)
class NodeFacts:
    node: str
    locations: Locations
    paths: dict[str, PathInfo]
    quota: Quota | None  # of the new location's filesystem, when it must carry quotas


def gather(
    transport: Transport,
    where: Locations,
    paths: Sequence[str],
    location: str,
    with_quota: bool,
) -> NodeFacts:
    """The node's facts for a relocation to `location`: one probe, one quota check."""
    found = probe(transport, [*paths, location])
    quota_here = quota(transport, found[location]) if with_quota else None
    return NodeFacts(transport.node, where, found, quota_here)
