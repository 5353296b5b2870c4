"""The switch of an import: per role and node, stop the role, move the data dir aside, put the
staged one in its place (or load the staged dump into a new, empty one), start the role and
wait for its health, each (node, role) a change of the rollout engine and all of it one call on
the node (engine/cycle.py), or one request to that call started ahead while the members
staged (switch_ahead.py). A failure puts back every data dir switched so far, newest first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kato import facts
from kato.data import resume
from kato.data.switch_ahead import Ahead
from kato.data.switch_plan import Group, commands, unit_command
from kato.engine.batches import Batching
from kato.engine.cycle import Command, Cycled, Expect, HealthAnswer, cycle
from kato.engine.report import FAILED, UNDONE
from kato.engine.rollout import OTHERS_FAILED, NodeChange, rollout
from kato.engine.session import Session
from kato.errors import KatoError, NodeUnreachable
from kato.operation import Operation
from kato.progress import Progress
from kato.transport.pool import Connections

TRIES = 3  # decisions on a role's state before its flapping fails the import (nothing ran)
ROLLBACK = """
set -eu
path=$1 previous=$2
if [ -e "$previous" ] || [ -L "$previous" ]; then
    rm -rf "$path"
    mv "$previous" "$path"
elif [ -e "$previous.absent" ]; then
    rm -rf "$path"
    rm -f "$previous.absent"
fi
rmdir "${previous%/*}" 2>/dev/null || true
"""


class ImportFailed(KatoError):
    """Switching a role's data failed; every switched data dir was put back."""


def switch_all(
    s: Session,
    groups: Sequence[Group],
    left_stopped: Mapping[tuple[str, str], str] | None = None,
    ahead: Ahead | None = None,
) -> None:
    """Through the engine, one (node, role) group at a time (switch_plan.groups: in start
    order), all or nothing: a failure
    (or Ctrl-C) puts back every data dir switched so far, newest first. `left_stopped` (from
    resume.left_stopped) names roles an interrupted import stopped while they ran: they count
    as running before, so they run after. `ahead`: what was learned and started while the
    members staged (the caller cancels the standbys left unused)."""
    left: list[str] = []
    stopped, ready = left_stopped or {}, ahead or Ahead()
    changes = [_change(s, g, left, stopped.get((g.node, g.role.name)), ready) for g in groups]
    report = rollout(s, changes, Batching(parallel=1, serial=1), undo_all=True)
    failed = [r for r in report.nodes if r.state in (FAILED, UNDONE) and r.message != OTHERS_FAILED]
    if failed:
        node, role = failed[0].node.split(" ", 1)
        not_back = [f"{r.node}: {r.undo}" for r in report.nodes if r.state == FAILED]
        raise ImportFailed(
            f"{node}: importing {role} failed: {failed[0].message}",
            hint=(
                "could not put back: " + "; ".join(left or not_back)
                if left or not_back
                else "every data dir switched so far was put back and its role restarted"
            ),
        )


def _change(
    s: Session, group: Group, left: list[str], interrupted: str | None, ahead: Ahead
) -> NodeChange:
    health = HealthAnswer(s.conns, group.node, (group.role,))

    def verify() -> None:
        if group.was_active:
            health()
            s.op.step(group.node, f"start {group.role.name}", None, "healthy", 0.0,
                      role=group.role.name, action=resume.START)  # fmt: skip

    def undo() -> None:
        problem = _roll_back(s.conns, s.op, group, s.progress, health)
        if problem:
            left.append(problem)
            raise KatoError(problem)

    return NodeChange(
        group.node,
        lambda: _switch(s.conns, s.op, group, s.progress, interrupted, health, ahead),
        undo=undo,
        verify=verify,
        restarts=(group.role,),
        label=group.role.name,
    )


def _switch(
    conns: Connections,
    op: Operation,
    group: Group,
    progress: Progress,
    interrupted: str | None,
    health: HealthAnswer,
    ahead: Ahead,
) -> int:
    """Stop the role, switch each data dir, start the role again (if it ran) and wait for its
    health: one call on the node (or one request to its standby), after the journal holds (on
    disk) whether the role ran, which the node checks before it stops anything."""
    node, role = group.node, group.role
    key = (node, role.name)
    transport = conns.get(node)  # fenced: the node changes only after this
    states = ahead.states.get(key) or facts.unit_states(role.units).gather(transport)
    for _ in range(TRIES):
        try:
            done = _decided(conns, op, group, progress, interrupted, states, ahead)
        except BaseException:
            if group.touched:  # how far the node got is unknown: put back every data dir
                group.switched = len(group.placements)  # (ROLLBACK skips one never moved)
            raise
        if done.unexpected is None:
            break
        states = done.unexpected  # nothing ran: decide again from these
    else:
        raise KatoError(
            f"{node}: {role.name} kept changing state (started or stopped by something else) "
            f"while kato switched its data: {_shown(states)}",
            hint="nothing was switched for it; find what starts or stops it, then import again",
        )
    placed = group.placements
    group.switched = max(0, min(done.ran - 1, len(placed)))
    for i, p in enumerate(placed[: group.switched]):
        if done.failed is not None and done.failed["index"] == i + 1:
            raise KatoError(f"{p.target.data_dir}: {done.failed['error']}")
        op.step(node, f"switch {role.name} {p.target.data_dir} to {p.member.name}", None,
                "ok", done.seconds[i + 1], previous=p.previous)  # fmt: skip
    done.raise_failed(node)  # the stop or the start
    group.unstaged = bool(group.unstage) and done.ran == len(commands(group, group.was_active))
    health.answer = done
    return len(placed)


def _decided(
    conns: Connections,
    op: Operation,
    group: Group,
    progress: Progress,
    interrupted: str | None,
    states: dict[str, str],
    ahead: Ahead,
) -> Cycled:
    """Decide from `states` whether the role ran, journal it (durable), then ask the node to
    switch if the role is still so (Cycled.unexpected: it is not; nothing ran): by the
    request to its standby (used once: a second decision makes the ordinary call)."""
    node, role = group.node, group.role
    active = all(states.get(unit) == "active" for unit in role.units)
    group.was_active = active
    if interrupted and not active:
        progress.warn(
            f"{node}: {role.name} was left stopped by the interrupted operation "
            f"{interrupted}; it is started again after the switch"
        )
        group.was_active = True
    state = "was running" if group.was_active else "was stopped"
    op.step(node, f"stop {role.name} to switch its data", None, state, 0.0, durable=True,
            role=role.name, action=resume.STOP, was_active=group.was_active)  # fmt: skip
    names = ", ".join(f"{p.target.data_dir} <- {p.member.name}" for p in group.placements)
    progress.step(f"{node}: {role.name}: stopping, switching {names}, starting")
    todo, roles = commands(group, group.was_active), (role,) if group.was_active else ()
    expect = Expect(role.units, active)
    transport = conns.get(node)  # fenced (again, within the lock's reuse): the node changes next
    standby = ahead.take((node, role.name))
    group.touched = True
    # not twice_harmless: a switch run again would move the new data aside
    done = standby.cycle(todo, roles, expect, twice_harmless=False) if standby else None
    done = done if done is not None else cycle(transport, todo, roles, expect)
    group.touched = done.unexpected is None  # unexpected: the node ran nothing
    return done


def _shown(states: Mapping[str, str]) -> str:
    return ", ".join(f"{unit} {state}" for unit, state in states.items())


def _roll_back(
    conns: Connections, op: Operation, group: Group, progress: Progress, health: HealthAnswer
) -> str | None:
    """Put the group's data dirs back (the role stopped, each switched dir put back newest
    first, the role started again if it ran: one call on the node, whose health answer the
    verify then uses); None when done, else what is left to do by hand. A group the node
    never ran any of (it failed before its request went, or the node answered that the role
    was not as journaled) has nothing to put back: its role is left as it was."""
    if not group.touched:
        return None
    progress.step(f"{group.node}: putting {group.role.name}'s previous data back")
    back = [
        Command(("sh", "-c", ROLLBACK, "sh", p.target.path, p.previous))
        for p in reversed(group.placements[: group.switched])
    ]
    start = [unit_command(group, "start")] if group.was_active else []
    try:
        done = cycle(
            conns.get(group.node),
            [unit_command(group, "stop"), *back, *start],
            (group.role,) if group.was_active else (),
        )
        done.raise_failed(group.node)
    except (KatoError, NodeUnreachable) as exc:
        return (
            f"{group.node} {group.role.name} ({exc.message}): its previous data is in "
            + ", ".join(p.previous for p in group.placements)
        )
    health.answer = done
    if group.was_active:
        op.step(group.node, f"start {group.role.name} (put back)", None, "started", 0.0,
                role=group.role.name, action=resume.START)  # fmt: skip
    return None


def unstage(conns: Connections, groups: Sequence[Group]) -> dict[str, tuple[str, ...]]:
    """Remove the staging dirs where the switch's last call on the node did not (best effort);
    the ones left, by node (an unreachable node keeps its own until `kato data cleanup`)."""
    left: dict[str, tuple[str, ...]] = {}
    for group in groups:
        if group.unstage and not group.unstaged:
            try:
                done = conns.get(group.node).run(("rm", "-rf", "--", *group.unstage), check=False)
            except KatoError:
                done = None
            if done is None or not done.ok:
                left[group.node] = group.unstage
    return left


def kept_staging(left: dict[str, tuple[str, ...]]) -> str:
    """What a failed import says of the staging dirs it could not remove, and the way on."""
    where = "; ".join(f"{node}: {' '.join(dirs)}" for node, dirs in sorted(left.items()))
    return f"staging left on the node ({where}): `kato data cleanup` removes it once it answers"
