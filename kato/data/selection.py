"""Which data dirs an export reads or an import writes: roles' export specs on the chosen nodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kato.config import Cluster
from kato.data.manifest import member_name
from kato.errors import UsageError
from kato.role_definitions import Definitions, known, role_of
from kato.role_export import ExportSpec
from kato.roles import Role


@dataclass(frozen=True)
class DataDir:
    """One exported data dir of one role on one node."""

    node: str
    role: str
    data_dir: str
    path: str
    spec: ExportSpec

    @property
    def member(self) -> str:
        return member_name(self.node, self.role, self.data_dir, self.spec.kind)

    @property
    def shown(self) -> str:
        return f"{self.node} {self.role} {self.data_dir}"


def chosen_roles(
    roles: Mapping[str, Role], only: Sequence[str], exclude: Sequence[str]
) -> set[str]:
    """The roles --role/--exclude leave (every role with data by default)."""
    with_data = {name for name, role in roles.items() if role.export}
    for option, names in (("--role", only), ("--exclude", exclude)):
        unknown = [n for n in names if n not in roles]
        if unknown:
            raise UsageError(
                f"{option} names unknown role {unknown[0]!r}",
                hint=f"roles with data to export: {', '.join(sorted(with_data))}",
            )
    chosen = (set(only) if only else with_data) - set(exclude)
    return {r for r in chosen if r in with_data}


def split_roles(values: Sequence[str] | None) -> list[str]:
    """--role a,b --role c → [a, b, c]."""
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


def data_dirs(
    cluster: Cluster,
    roles: Definitions,
    *,
    only: Sequence[str] = (),
    exclude: Sequence[str] = (),
    nodes: Sequence[str] = (),
) -> tuple[DataDir, ...]:
    """Every exported data dir of the chosen roles on the chosen nodes, in role order; each
    node's as the release it runs defines them when `roles` is per node."""
    wanted = chosen_roles(known(roles), only, exclude)
    picked = [cluster.node(n) for n in nodes] if nodes else list(cluster.nodes)
    found = []
    for node in picked:
        for name in node.roles:
            role = role_of(roles, node.name, name)
            if role is None or name not in wanted:
                continue
            for data_dir, spec in role.export.items():
                found.append(
                    (
                        role.order,
                        node.name,
                        DataDir(node.name, name, data_dir, role.data_dirs[data_dir], spec),
                    )
                )
    found.sort(key=lambda item: (item[0], item[1], item[2].role, item[2].data_dir))
    return tuple(item[2] for item in found)


def not_defined(
    cluster: Cluster,
    roles: Definitions,
    *,
    only: Sequence[str] = (),
    exclude: Sequence[str] = (),
    nodes: Sequence[str] = (),
) -> list[str]:
    """ "NODE ROLE" for each chosen role the cluster file gives a node whose release does not
    define it (not installed there): data_dirs leaves those out, and the caller says so,
    because a backup that lacks a role must never lack it silently."""
    picked = [cluster.node(n) for n in nodes] if nodes else list(cluster.nodes)
    return [
        f"{node.name} {name}"
        for node in picked
        for name in node.roles
        if role_of(roles, node.name, name) is None
        and name not in exclude
        and (not only or name in only)
    ]
