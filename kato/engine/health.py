"""The one health wait: a role is healthy on a node when its units are active and its health
check passes; each role is waited for up to its own timeout. A node coming back from a reboot
is waited for first (it answers, systemd is up, and its boot id changed or it stayed healthy)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from kato import facts
from kato.errors import LockLost, NodeUnreachable
from kato.roles import Role
from kato.transport.base import Transport
from kato.transport.fanout import failure
from kato.transport.pool import Connections

POLL = 0.5
FIRST_POLL = 0.05  # a restarted role is often healthy within a tenth of a second: ask again
# soon, then less often (0.05, 0.1, 0.2, 0.4, 0.5 s ...), rather than wait 0.5 s each time
SETTLE_POLLS = 3  # healthy this many times in a row, when the boot id did not change
BOOT_ID = ("cat", "/proc/sys/kernel/random/boot_id")


def problems(transport: Transport, roles: Sequence[Role]) -> dict[str, str]:
    """What is wrong with each unhealthy role on the node (one agent call for all of them)."""
    found = facts.node_facts(transport, roles).health
    return {r.name: str(found[r.name]) for r in roles if found.get(r.name) is not None}


def wait_healthy(
    conns: Connections,
    node: str,
    roles: Sequence[Role],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Wait until every role is healthy on `node`, each for up to its own health timeout
    (counted from this call), asking the node about all of them in one call per poll. Raises
    NodeUnreachable(node, "health") naming the first role that ran out of time."""
    started, pause = time.monotonic(), FIRST_POLL
    while True:
        wrong = problems(conns.get(node), roles) if roles else {}
        if not wrong:
            return
        late = [
            r for r in roles if r.name in wrong and time.monotonic() >= started + r.health.timeout
        ]
        if late:
            raise not_healthy(node, late[0], wrong[late[0].name])
        sleep(pause)
        pause = min(POLL, pause * 2)


def not_healthy(node: str, role: Role, problem: str) -> NodeUnreachable:
    """The error of a role that ran out of time (here or in the node's own wait)."""
    return NodeUnreachable(
        node, "health", f"{role.name} not healthy within {role.health.timeout:g}s: {problem}"
    )


def boot_id(transport: Transport) -> str:
    return transport.run(BOOT_ID, timeout=30).stdout.strip()


def wait_back(
    conns: Connections,
    node: str,
    roles: Sequence[Role],
    previous_boot: str,
    timeout: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Wait until the node answers, its systemd is up and its roles are healthy: at once when
    it booted again, or after SETTLE_POLLS healthy answers in a row when it did not (so a node
    that has only begun to shut down is never taken for healthy)."""
    deadline = time.monotonic() + timeout
    streak, last = 0, ""
    while time.monotonic() < deadline:
        try:
            transport = conns.get(node)
            state = transport.run(
                ("systemctl", "is-system-running", "--wait"), check=False, timeout=60
            ).stdout.strip()
            if state not in ("running", "degraded"):
                raise NodeUnreachable(node, "health", f"systemd is {state}")
            wrong = problems(transport, roles)
            if wrong:
                role, problem = next(iter(wrong.items()))
                raise NodeUnreachable(node, "health", f"{role}: failing: {problem}")
            streak += 1
            if boot_id(transport) != previous_boot or streak >= SETTLE_POLLS:
                return
        except LockLost:
            raise  # fenced: not a node that is not back yet
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = failure(node, exc).message
            streak = 0
            conns.drop(node)
        sleep(1.0)
    raise NodeUnreachable(node, "health", f"not healthy within {timeout:g}s ({last})")
