"""Facts: a command to run on a node and a pure parser of its output (tested on captured text)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from kato.config import NODE_FILE as NODE_FILE  # the node's identity, written by install
from kato.roles import Health
from kato.transport.base import CommandResult, Transport

T = TypeVar("T")
RELEASES = "/var/lib/kato/releases"


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
    """systemctl is-active prints one state per unit, in order, whatever its exit status."""

    def parse(result: CommandResult) -> dict[str, str]:
        states = result.stdout.split()
        return {u: (states[i] if i < len(states) else "unknown") for i, u in enumerate(units)}

    return Fact(("systemctl", "is-active", "--", *units), parse)


TCP_PROBE = (
    "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), "
    "timeout=float(sys.argv[3])).close()"
)


def health_check(health: Health, timeout: float | None = None) -> Fact[str | None]:
    """None when healthy, else what failed."""
    limit = str(timeout or health.timeout)
    if health.http:
        argv: tuple[str, ...] = ("curl", "-fsS", "-m", limit, "-o", "/dev/null", health.http)
    elif health.tcp:
        argv = ("python3", "-c", TCP_PROBE, health.tcp[0], str(health.tcp[1]), limit)
    else:
        argv = ("timeout", limit, *(health.command or ("false",)))

    def parse(result: CommandResult) -> str | None:
        if result.ok:
            return None
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()
        return last[-1][-200:] if last else f"exit {result.status}"

    return Fact(argv, parse)


FREE_SPACE = """
import json, os, sys
out = {}
for path in sys.argv[1:]:
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe) or "/"
    st = os.statvfs(probe)
    out[path] = {"free": st.f_bavail * st.f_frsize, "size": st.f_blocks * st.f_frsize,
                 "inodes": st.f_files, "inodes_free": st.f_favail,
                 "exists": os.path.isdir(path)}
print(json.dumps(out))
"""


def free_space(paths: Sequence[str]) -> Fact[dict[str, dict[str, int | bool]]]:
    def parse(result: CommandResult) -> dict[str, dict[str, int | bool]]:
        if not result.ok:
            return {}
        parsed: dict[str, dict[str, int | bool]] = json.loads(result.stdout)
        return parsed

    return Fact(("python3", "-c", FREE_SPACE, *paths), parse)
