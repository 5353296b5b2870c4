"""Which target node and data dir each archive member goes to: matched by role, not by name."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from kato.config import Cluster
from kato.data.manifest import Manifest, Member
from kato.data.selection import DataDir, chosen_roles, data_dirs
from kato.errors import PreflightRefused, UsageError
from kato.role_definitions import Definitions, known

STAGING = ".kato-import-"
PREVIOUS = ".kato-previous-"


def private_dir(var: str, purpose: str) -> str:
    """Shell that makes the dir named by `var` 0700, or takes it only as a real directory of
    ours that an earlier data dir of this import made (0700 then too). These dirs sit beside a
    data dir, whose parent another user may be able to write: a link planted at the name is
    refused, never followed by a mkdir -p or a chmod (node_data.private_dir does the same in
    Python for compressed members)."""
    ours = f'[ -d "{var}" ] && [ ! -L "{var}" ] && [ "$(stat -c %u -- "{var}")" = "$(id -u)" ]'
    refuse = f"{var} is not a directory of ours (a symbolic link?): refusing to {purpose}"
    made = f'mkdir -m 0700 -- "{var}" 2>/dev/null'
    return f'{made} || {{ {ours}; }} || {{ echo "{refuse}" >&2; exit 1; }}; '


@dataclass(frozen=True)
class Placement:
    member: Member
    target: DataDir
    run: str  # this import's id: names its staging and previous-data dirs

    @property
    def parent(self) -> str:
        return posixpath.dirname(self.target.path)

    @property
    def base(self) -> str:
        return posixpath.basename(self.target.path)

    @property
    def staging_dir(self) -> str:
        return f"{self.parent}/{STAGING}{self.run}"

    @property
    def staged(self) -> str:
        suffix = "" if self.member.type == "tree" else ".dump"
        return f"{self.staging_dir}/{self.base}{suffix}"

    @property
    def previous(self) -> str:
        return f"{self.parent}/{PREVIOUS}{self.run}/{self.base}"


def place(
    manifest: Manifest,
    cluster: Cluster,
    roles: Definitions,
    run: str,
    *,
    only: Sequence[str] = (),
    nodes: Sequence[str] = (),
) -> tuple[Placement, ...]:
    """Pair the members of each (role, data dir) with this cluster's nodes carrying the role,
    both in name order; refuse when the counts differ (unless --node picks the one target)."""
    wanted = chosen_roles(known(roles), only, ())
    targets = data_dirs(cluster, roles, only=only, nodes=nodes)
    placed = []
    for key in dict.fromkeys((m.role, m.data_dir) for m in manifest.members):
        if key[0] not in wanted:
            if only:
                continue  # left out on purpose
            raise PreflightRefused(
                f"the archive holds {key[0]} {key[1]}, which this platform does not import "
                f"(no role {key[0]} with that data dir in its export)",
                hint="import the other roles with --role, e.g. --role " + ",".join(sorted(wanted)),
            )
        members = sorted((m for m in manifest.members if (m.role, m.data_dir) == key),
                         key=lambda m: m.node)  # fmt: skip
        here = sorted((t for t in targets if (t.role, t.data_dir) == key), key=lambda t: t.node)
        if not here and nodes:
            continue  # the chosen nodes do not carry this role
        if nodes and len(here) == 1 and len(members) > 1:
            members = [m for m in members if m.node == here[0].node] or members
        _check_counts(cluster, key, members, here)
        for member, target in zip(members, here, strict=True):
            if member.type != target.spec.kind:
                raise PreflightRefused(
                    f"{member.name} is a {member.type}, but role {target.role} here exports "
                    f"{target.data_dir} as a {target.spec.kind}",
                    hint="the archive comes from an incompatible platform; use --role to "
                    "leave this role out",
                )
            placed.append(Placement(member, target, run))
    if not placed:
        raise UsageError(
            "nothing to import: no member of the archive maps to the chosen nodes and roles",
            hint="see `kato data verify ARCHIVE` for what it holds",
        )
    return tuple(placed)


def _check_counts(
    cluster: Cluster, key: tuple[str, str], members: list[Member], here: list[DataDir]
) -> None:
    role, data_dir = key
    if not here:
        raise PreflightRefused(
            f"the archive holds {role} {data_dir}, but no node of {cluster.name} carries {role}",
            hint=f"leave it out with --role (other roles), or give a node the {role} role",
        )
    if len(members) != len(here):
        raise PreflightRefused(
            f"the archive holds {role} {data_dir} from {len(members)} node(s) "
            f"({', '.join(m.node for m in members)}), {cluster.name} has {len(here)} "
            f"({', '.join(t.node for t in here)})",
            hint="import into one node at a time with --node (members then match by node "
            "name), or leave the role out with --role",
        )
