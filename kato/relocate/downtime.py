"""A relocation's downtime in as few node calls as it can be: stopping the roles (and noting
the record's "stopped") is one call, and after the verification, flushing the copy, switching
the record and starting the roles, with the wait for their health, is one more
(kato/engine/cycle.py). Every command still gets its journal line, with its own seconds."""

from __future__ import annotations

from collections.abc import Sequence

from kato.engine.cycle import Command, Cycled, HealthAnswer, cycle
from kato.operation import Operation
from kato.progress import Progress
from kato.relocate.steps import NodeRun, RelocationFailed, pending, record_args, roles_of
from kato.remote.agent import AGENT
from kato.roles import Role
from kato.transport.base import Transport

UNIT_TIMEOUT = 300.0
FLUSH_TIMEOUT = 3600.0


def stop(t: Transport, op: Operation, run: NodeRun, progress: Progress) -> None:
    """Stop the roles (reverse start order), then note in the record that they are stopped."""
    roles = tuple(reversed(roles_of(run.targets)))
    progress.step(f"{t.node}: stopping {', '.join(r.name for r in roles)}")
    steps = [(f"stop {r.name}", _units("stop", r)) for r in roles]
    steps += [
        (f"note {x.role.name} {x.name} stopped",
         Command(AGENT.argv("datadirs.py", "/", "moving", x.role.name, x.name, x.dest,
                            "stopped")))
        for x in pending(run)
    ]  # fmt: skip
    _journaled(t, op, steps, ())


def switch_and_start(
    t: Transport, op: Operation, run: NodeRun, progress: Progress, health: HealthAnswer
) -> None:
    """Each verified copy flushed to disk before the record points at it (a crash right after
    the switch must not find a half-written copy), the switch, then the roles started in start
    order; the node waits for their health and `health` (the change's verify) reads its
    answer."""
    roles = roles_of(run.targets)
    progress.step(f"{t.node}: switching, starting {', '.join(r.name for r in roles)}")
    steps: list[tuple[str, Command]] = []
    for x in pending(run):
        flush = Command(("sync", "-f", "--", x.dest), FLUSH_TIMEOUT)
        record = Command(AGENT.argv("datadirs.py", "/", *record_args(x, x.dest)))
        steps += [(f"flush {x.dest} to disk", flush),
                  (f"switch {x.role.name} {x.name} to {x.dest}", record)]  # fmt: skip
    steps += [(f"start {r.name}", _units("start", r)) for r in roles]
    health.answer = _journaled(t, op, steps, roles)


def _units(action: str, role: Role) -> Command:
    return Command(("systemctl", action, "--", *role.units), UNIT_TIMEOUT)


def _journaled(
    t: Transport, op: Operation, steps: Sequence[tuple[str, Command]], roles: Sequence[Role]
) -> Cycled:
    """One node call for all the commands; a journal line for each that ran; a failed one
    raises RelocationFailed naming it (the engine then puts the old location back)."""
    done = cycle(t, [c for _, c in steps], roles)
    for i, (what, command) in enumerate(steps[: done.ran]):
        failed = done.failed if done.failed and int(done.failed["index"]) == i else None
        result = f"exit {failed['status']}" if failed else "ok"
        seconds = done.seconds[i] if i < len(done.seconds) else 0.0
        op.step(t.node, what, command.argv, result, seconds)
        if failed:
            raise RelocationFailed(f"{what} failed: {failed['error']}")
    return done
