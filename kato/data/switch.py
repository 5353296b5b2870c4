"""The switch of an import: per role and node, stop the role, move the data dir aside, put the
staged one in its place (or load the staged dump into a new, empty one), start the role and
wait for its health, each (node, role) a change of the rollout engine and all of it one call on
the node (engine/cycle.py). A failure puts back every data dir switched so far, newest first."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kato.data import resume
from kato.data.placement import Placement
from kato.engine.batches import Batching
from kato.engine.cycle import Command, HealthAnswer, cycle
from kato.engine.report import FAILED, UNDONE
from kato.engine.rollout import OTHERS_FAILED, NodeChange, rollout
from kato.engine.session import Session
from kato.errors import KatoError, NodeUnreachable, UsageError
from kato.operation import Operation
from kato.progress import Progress
from kato.role_definitions import Definitions, role_of
from kato.roles import Role
from kato.transport.pool import Connections

LOAD_TIMEOUT = 24 * 3600.0  # a big database can take hours to load; the role is stopped anyway
# path staged previous kind mode owner [load argv...]: the previous data dir is renamed, never
# copied; `.absent` records that there was none, so a rollback knows what to remove. A tree
# brings its own mode and owner (its "." entry); a dump's new data dir gets the mode and owner
# the export recorded, not the previous dir's.
SWITCH = """
set -eu
path=$1 staged=$2 previous=$3 kind=$4 mode=$5 owner=$6
shift 6
if [ -L "$path" ]; then
    echo "$path is a symbolic link: refusing to switch it (nothing was changed)" >&2
    exit 1
fi
mkdir -p "${previous%/*}"
chmod 0700 "${previous%/*}"
if [ -e "$path" ]; then
    mv "$path" "$previous"
else
    : >"$previous.absent"
fi
if [ "$kind" = tree ]; then
    mv "$staged" "$path"
else
    install -d -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$path"
    "$@" "$path" <"$staged"
fi
"""
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


@dataclass
class _Group:
    """One role on one node, with the data dirs it takes."""

    node: str
    role: Role
    placements: list[Placement]
    was_active: bool = False
    switched: int = 0


def groups(placements: Sequence[Placement], roles: Definitions) -> list[_Group]:
    """(node, role) groups in the roles' start order: data services first; each role as its
    node's release defines it."""
    found: dict[tuple[str, str], _Group] = {}
    for p in placements:
        key = (p.target.node, p.target.role)
        if key not in found:
            role = role_of(roles, *key)
            if role is None:
                raise UsageError(f"{key[0]} does not define the role {key[1]}")
            found[key] = _Group(key[0], role, [])
        found[key].placements.append(p)
    return sorted(found.values(), key=lambda g: (g.role.order, g.role.name, g.node))


def switch_all(
    s: Session,
    placements: Sequence[Placement],
    roles: Definitions,
    left_stopped: Mapping[tuple[str, str], str] | None = None,
) -> None:
    """Through the engine, one (node, role) at a time in start order, all or nothing: a failure
    (or Ctrl-C) puts back every data dir switched so far, newest first. `left_stopped` (from
    resume.left_stopped) names roles an interrupted import stopped while they ran: they count
    as running before, so they run after."""
    left: list[str] = []
    stopped = left_stopped or {}
    changes = [
        _change(s, g, left, stopped.get((g.node, g.role.name))) for g in groups(placements, roles)
    ]
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


def _change(s: Session, group: _Group, left: list[str], interrupted: str | None) -> NodeChange:
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
        lambda: _switch(s.conns, s.op, group, s.progress, interrupted, health),
        undo=undo,
        verify=verify,
        restarts=(group.role,),
        label=group.role.name,
    )


def _units(group: _Group, action: str) -> Command:
    return Command(("systemctl", action, "--", *group.role.units))


def _switch(
    conns: Connections,
    op: Operation,
    group: _Group,
    progress: Progress,
    interrupted: str | None,
    health: HealthAnswer,
) -> int:
    """Stop the role, switch each data dir, start the role again (if it ran) and wait for its
    health: one call on the node, after the journal holds (on disk) whether the role ran."""
    node, role = group.node, group.role
    states = conns.get(node).run(("systemctl", "is-active", "--", *role.units), check=False)
    group.was_active = all(s == "active" for s in states.stdout.split())
    if interrupted and not group.was_active:
        progress.warn(
            f"{node}: {role.name} was left stopped by the interrupted operation "
            f"{interrupted}; it is started again after the switch"
        )
        group.was_active = True
    state = "was running" if group.was_active else "was stopped"
    op.step(node, f"stop {role.name} to switch its data", None, state, 0.0, durable=True,
            role=role.name, action=resume.STOP, was_active=group.was_active)  # fmt: skip
    switches = [
        Command(
            ("sh", "-c", SWITCH, "sh", p.target.path, p.staged, p.previous, p.member.type,
             p.member.mode, p.member.owner, *p.target.spec.load),
            LOAD_TIMEOUT,
        )
        for p in group.placements
    ]  # fmt: skip
    names = ", ".join(f"{p.target.data_dir} <- {p.member.name}" for p in group.placements)
    progress.step(f"{node}: {role.name}: stopping, switching {names}, starting")
    start = [_units(group, "start")] if group.was_active else []
    done = cycle(
        conns.get(node),
        [_units(group, "stop"), *switches, *start],
        (role,) if group.was_active else (),
    )
    group.switched = max(0, min(done.ran - 1, len(switches)))
    for i, p in enumerate(group.placements[: group.switched]):
        if done.failed is not None and done.failed["index"] == i + 1:
            raise KatoError(f"{p.target.data_dir}: {done.failed['error']}")
        op.step(node, f"switch {role.name} {p.target.data_dir} to {p.member.name}", None,
                "ok", done.seconds[i + 1], previous=p.previous)  # fmt: skip
    done.raise_failed(node)  # the stop or the start
    health.answer = done
    return len(group.placements)


def _roll_back(
    conns: Connections, op: Operation, group: _Group, progress: Progress, health: HealthAnswer
) -> str | None:
    """Put the group's data dirs back (the role stopped, each switched dir put back newest
    first, the role started again if it ran: one call on the node, whose health answer the
    verify then uses); None when done, else what is left to do by hand."""
    progress.step(f"{group.node}: putting {group.role.name}'s previous data back")
    back = [
        Command(("sh", "-c", ROLLBACK, "sh", p.target.path, p.previous))
        for p in reversed(group.placements[: group.switched])
    ]
    start = [_units(group, "start")] if group.was_active else []
    try:
        done = cycle(
            conns.get(group.node),
            [_units(group, "stop"), *back, *start],
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


def unstage(conns: Connections, placements: Sequence[Placement]) -> None:
    """Remove the staging dirs (best effort: an unreachable node keeps its until cleanup)."""
    for node in dict.fromkeys(p.target.node for p in placements):
        dirs = sorted({p.staging_dir for p in placements if p.target.node == node})
        with contextlib.suppress(KatoError):
            conns.get(node).run(("rm", "-rf", "--", *dirs), check=False)
