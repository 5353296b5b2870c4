"""What the switch of an import runs on a node, per (node, role): the role stopped, each data
dir moved aside and the staged one put in its place (or the staged dump loaded into a new,
empty one), the role started again. switch.py runs it; switch_ahead.py starts it in standby."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kato.data.placement import Placement, private_dir
from kato.engine.cycle import Command
from kato.errors import UsageError
from kato.role_definitions import Definitions, role_of
from kato.roles import Role

LOAD_TIMEOUT = 24 * 3600.0  # a big database can take hours to load; the role is stopped anyway
# path staged previous kind mode owner [load argv...]: the previous data dir is renamed, never
# copied; `.absent` records that there was none, so a rollback knows what to remove. A tree
# brings its own mode and owner (its "." entry); a dump's new data dir gets the mode and owner
# the export recorded, not the previous dir's.
SWITCH = (
    """
set -eu
path=$1 staged=$2 previous=$3 kind=$4 mode=$5 owner=$6
shift 6
if [ -L "$path" ]; then
    echo "$path is a symbolic link: refusing to switch it (nothing was changed)" >&2
    exit 1
fi
kept=${previous%/*}
"""
    + private_dir("$kept", "move the data dir into it")
    + """
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
)
UNSTAGE = 'rm -rf -- "$@" || true'


@dataclass
class Group:
    """One role on one node, with the data dirs it takes (and, once switched, whether it ran
    and how many of its data dirs were switched)."""

    node: str
    role: Role
    placements: list[Placement]
    was_active: bool = False
    switched: int = 0
    touched: bool = False  # a request went that the node may have run (some of): undo then
    unstage: tuple[str, ...] = ()  # the node's last group: its staging dirs, removed at the end
    unstaged: bool = False  # and they were: the import's own clean-up skips the node


def groups(placements: Sequence[Placement], roles: Definitions) -> list[Group]:
    """(node, role) groups in the roles' start order: data services first; each role as its
    node's release defines it."""
    found: dict[tuple[str, str], Group] = {}
    for p in placements:
        key = (p.target.node, p.target.role)
        if key not in found:
            role = role_of(roles, *key)
            if role is None:
                raise UsageError(f"{key[0]} does not define the role {key[1]}")
            found[key] = Group(key[0], role, [])
        found[key].placements.append(p)
    ordered = sorted(found.values(), key=lambda g: (g.role.order, g.role.name, g.node))
    last = {g.node: g for g in ordered}
    for node, group in last.items():
        group.unstage = tuple(sorted({p.staging_dir for p in placements if p.target.node == node}))
    return ordered


def commands(group: Group, start: bool = True) -> list[Command]:
    """The switch's commands on its node: stop, each data dir switched, start (if `start`),
    then, for the node's last group, its staging dirs removed (what is left of them: a
    dump's staged file, empty dirs), which saves the clean-up a call of its own; that removal
    never fails the switch (the import's own clean-up, unstage, tries again)."""
    switches = [
        Command(
            ("sh", "-c", SWITCH, "sh", p.target.path, p.staged, p.previous, p.member.type,
             p.member.mode, p.member.owner, *p.target.spec.load),
            LOAD_TIMEOUT,
        )
        for p in group.placements
    ]  # fmt: skip
    return [
        unit_command(group, "stop"),
        *switches,
        *([unit_command(group, "start")] if start else []),
        *([Command(("sh", "-c", UNSTAGE, "sh", *group.unstage))] if group.unstage else []),
    ]


def unit_command(group: Group, action: str) -> Command:
    return Command(("systemctl", action, "--", *group.role.units))
