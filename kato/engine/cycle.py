"""A node's "run these commands, then wait until these roles are healthy" as ONE call to the
node agent (kato/remote/role_cycle.py): the node polls its roles' health itself, with the same
backoff and each role's own deadline as health.wait_healthy, and the core gets one answer
instead of a command per step and a round trip per poll. Used by the import's switch and by
patch install's restarts; the errors are those of the commands and of the health wait."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kato import facts
from kato.engine.health import not_healthy, wait_healthy
from kato.errors import RemoteCommandFailed
from kato.remote.agent import AGENT
from kato.roles import Role
from kato.transport.base import Transport
from kato.transport.pool import Connections

PROGRAM = "role_cycle.py"
SLACK = 60.0  # beyond the commands' and the health wait's own limits, for the call itself


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    timeout: float = 600.0


@dataclass(frozen=True)
class Cycled:
    """The node's answer: how many commands ran (the failed one included), the failure, each
    command's seconds, the roles' last health and the first role late (None: all healthy)."""

    commands: tuple[Command, ...]
    ran: int
    failed: dict[str, Any] | None
    seconds: tuple[float, ...]
    health: dict[str, str | None] = field(default_factory=dict)
    late: str | None = None
    unexpected: dict[str, str] | None = None  # `expect` did not hold: the states; nothing ran

    @classmethod
    def of(cls, commands: Sequence[Command], answer: dict[str, Any]) -> Cycled:
        """The node's JSON answer to `commands`."""
        return cls(
            tuple(commands),
            int(answer["ran"]),
            answer.get("failed"),
            tuple(answer.get("seconds", ())),
            answer.get("health") or {},
            answer.get("late"),
            answer.get("unexpected"),
        )

    def raise_failed(self, node: str) -> None:
        """RemoteCommandFailed for the command that failed, as running it alone would raise."""
        if self.failed is not None:
            argv = self.commands[int(self.failed["index"])].argv
            stderr = str(self.failed.get("stderr") or self.failed.get("error") or "")
            raise RemoteCommandFailed(node, argv, int(self.failed["status"]), stderr)


@dataclass(frozen=True)
class Expect:
    """What the caller decided from (and journaled): whether every unit was active. The node
    checks it before the first command and runs nothing when it no longer holds."""

    units: tuple[str, ...]
    active: bool


def request(
    commands: Sequence[Command], roles: Sequence[Role], expect: Expect | None = None
) -> dict[str, Any]:
    asked: dict[str, Any] = {
        "commands": [{"argv": list(c.argv), "timeout": c.timeout} for c in commands],
        "roles": facts.facts_request(roles)["roles"],
    }
    if expect is not None:
        asked["expect"] = {"units": list(expect.units), "active": expect.active}
    return asked


def argv() -> tuple[str, ...]:
    """The agent call, as a plan shows it (the request goes on its stdin)."""
    return AGENT.argv(PROGRAM)


def limit(commands: Sequence[Command], roles: Sequence[Role]) -> float:
    """The longest the call may take: the commands' timeouts and the slowest health wait."""
    return sum(c.timeout for c in commands) + max((r.health.timeout for r in roles), default=0)


def cycle(
    transport: Transport,
    commands: Sequence[Command],
    roles: Sequence[Role],
    expect: Expect | None = None,
) -> Cycled:
    """Run `commands` on the node in order (stopping at the first that fails), then wait there
    until every role in `roles` is healthy or one is past its health timeout; with `expect`,
    only if it still holds (else Cycled.unexpected says what was found)."""
    text = json.dumps(request(commands, roles, expect)).encode()
    done = AGENT.call(transport, PROGRAM, stdin=text, timeout=limit(commands, roles) + SLACK)
    if not done.ok:
        raise RemoteCommandFailed(transport.node, done.argv[:3], done.status, done.stderr)
    return Cycled.of(commands, json.loads(done.stdout))


class HealthAnswer:
    """A change's verify: the health the node reported at the end of the change's own cycle
    (used once), else a health wait from here (after an undo, say)."""

    def __init__(self, conns: Connections, node: str, roles: Sequence[Role]) -> None:
        self.conns, self.node, self.roles = conns, node, tuple(roles)
        self.answer: Cycled | None = None

    def __call__(self) -> None:
        answer, self.answer = self.answer, None
        if answer is None:
            wait_healthy(self.conns, self.node, self.roles)
        elif answer.late is not None:
            role = next(r for r in self.roles if r.name == answer.late)
            raise not_healthy(self.node, role, str(answer.health.get(role.name)))
