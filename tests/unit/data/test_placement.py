"""Placement: archive members go to this cluster's nodes by role, never by node name alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from kato import config
from kato.config import Cluster
from kato.data.manifest import Manifest
from kato.data.placement import PREVIOUS, STAGING, Placement, place
from kato.data.selection import chosen_roles, data_dirs, split_roles
from kato.errors import ExitCode, PreflightRefused, UsageError
from kato.roles import Role, load_roles
from tests.unit.data.build import Content, manifest_of

REPO_ROOT = Path(__file__).resolve().parents[3]
RUN = "20240301T120000Z-ab12"
DATA_ROLES = ("postgresql", "redis", "controller", "filesystem")


@pytest.fixture(scope="module")
def roles() -> dict[str, Role]:
    return load_roles(REPO_ROOT / "roles")


def cluster(nodes: Mapping[str, Sequence[str]], name: str = "stage") -> Cluster:
    raw: dict[str, Any] = {
        "name": name,
        "core": next(iter(nodes)),
        "nodes": [
            {"name": node, "address": f"10.0.0.{i + 1}", "roles": list(node_roles)}
            for i, (node, node_roles) in enumerate(nodes.items())
        ],
    }
    return config.parse(raw, "test")


KIND = {"postgresql": "stream", "redis": "stream", "controller": "tree", "filesystem": "tree"}
DIR = {"postgresql": "services", "redis": "services", "controller": "controller",
       "filesystem": "droplets"}  # fmt: skip


def archive(*pairs: tuple[str, str]) -> Manifest:
    """A manifest holding (node, role) members, each with the role's data dir and kind."""
    return manifest_of(
        [Content(node, role, DIR[role], KIND[role], b"x").member() for node, role in pairs]
    )


ONE_NODE = archive(*(("node1", role) for role in DATA_ROLES))


def pairs(placed: Sequence[Placement]) -> list[tuple[str, str, str]]:
    return [(p.member.node, p.member.role, p.target.node) for p in placed]


def test_one_node_to_one_node_of_another_name(roles: dict[str, Role]) -> None:
    target = cluster({"core-a": [*DATA_ROLES, "router"], "dea-a": ["dea"]})
    placed = place(ONE_NODE, target, roles, RUN)
    assert sorted(pairs(placed)) == sorted(("node1", r, "core-a") for r in DATA_ROLES)
    for p in placed:
        assert (p.target.role, p.target.data_dir) == (p.member.role, p.member.data_dir)
        assert p.target.path == roles[p.member.role].data_dirs[p.member.data_dir]
        assert p.target.spec.kind == p.member.type
        assert p.run == RUN


def test_roles_spread_over_several_nodes(roles: dict[str, Role]) -> None:
    target = cluster({"db": ["postgresql", "redis"], "ctl": ["controller"], "fs": ["filesystem"]})
    placed = place(ONE_NODE, target, roles, RUN)
    assert {(p.member.role, p.target.node) for p in placed} == {
        ("postgresql", "db"), ("redis", "db"), ("controller", "ctl"), ("filesystem", "fs"),
    }  # fmt: skip


def test_several_members_pair_with_several_nodes_in_name_order(roles: dict[str, Role]) -> None:
    manifest = archive(("r2", "redis"), ("r10", "redis"), ("r1", "redis"))
    target = cluster({"c": ["redis"], "a": ["redis"], "b": ["redis"]})
    placed = place(manifest, target, roles, RUN)
    assert pairs(placed) == [("r1", "redis", "a"), ("r10", "redis", "b"), ("r2", "redis", "c")]


def test_a_role_no_node_carries_is_refused(roles: dict[str, Role]) -> None:
    target = cluster({"core-a": ["postgresql", "redis", "controller"]})
    with pytest.raises(PreflightRefused) as caught:
        place(ONE_NODE, target, roles, RUN)
    error = caught.value
    assert error.exit_code == ExitCode.PREFLIGHT and int(error.exit_code) == 7
    assert error.message == (
        "the archive holds filesystem droplets, but no node of stage carries filesystem"
    )
    assert error.hint and "--role" in error.hint


def test_different_counts_are_refused(roles: dict[str, Role]) -> None:
    manifest = archive(("node1", "redis"), ("node2", "redis"))
    target = cluster({"core-a": ["redis"], "other": ["router"]})
    with pytest.raises(PreflightRefused) as caught:
        place(manifest, target, roles, RUN)
    assert caught.value.exit_code == 7
    assert caught.value.message == (
        "the archive holds redis services from 2 node(s) (node1, node2), stage has 1 (core-a)"
    )
    assert caught.value.hint and "--node" in caught.value.hint

    fewer = archive(("node1", "redis"))
    with pytest.raises(PreflightRefused, match=r"from 1 node\(s\) \(node1\), stage has 2"):
        place(fewer, cluster({"a": ["redis"], "b": ["redis"]}), roles, RUN)


def test_only_leaves_the_other_roles_out(roles: dict[str, Role]) -> None:
    target = cluster({"core-a": ["controller", "redis"]})  # no postgresql, no filesystem
    placed = place(ONE_NODE, target, roles, RUN, only=["controller"])
    assert pairs(placed) == [("node1", "controller", "core-a")]
    placed = place(ONE_NODE, target, roles, RUN, only=["redis", "controller"])
    assert sorted(pairs(placed)) == [
        ("node1", "controller", "core-a"),
        ("node1", "redis", "core-a"),
    ]
    with pytest.raises(PreflightRefused, match="no node of stage carries postgresql"):
        place(ONE_NODE, target, roles, RUN, only=["postgresql"])


def test_only_names_a_known_role(roles: dict[str, Role]) -> None:
    with pytest.raises(UsageError, match="--role names unknown role 'mysql'"):
        place(ONE_NODE, cluster({"a": list(DATA_ROLES)}), roles, RUN, only=["mysql"])


def test_only_a_role_the_archive_lacks_imports_nothing(roles: dict[str, Role]) -> None:
    manifest = archive(("node1", "redis"))
    with pytest.raises(UsageError, match="nothing to import") as caught:
        place(manifest, cluster({"a": list(DATA_ROLES)}), roles, RUN, only=["controller"])
    assert caught.value.exit_code == ExitCode.USAGE


def test_node_picks_one_target_and_its_member_by_name(roles: dict[str, Role]) -> None:
    manifest = archive(("node1", "redis"), ("node2", "redis"), ("node3", "redis"))
    target = cluster({"node1": ["redis"], "node2": ["redis"], "node3": ["redis"]})
    placed = place(manifest, target, roles, RUN, nodes=["node2"])
    assert pairs(placed) == [("node2", "redis", "node2")]
    assert placed[0].member.name == "data/node2/redis/services.dump"


def test_node_with_a_single_member_takes_it_whatever_its_name(roles: dict[str, Role]) -> None:
    target = cluster({"core-a": list(DATA_ROLES), "core-b": list(DATA_ROLES)})
    placed = place(ONE_NODE, target, roles, RUN, nodes=["core-b"])
    assert sorted(pairs(placed)) == sorted(("node1", r, "core-b") for r in DATA_ROLES)


def test_node_matching_no_member_by_name_is_refused(roles: dict[str, Role]) -> None:
    manifest = archive(("node1", "redis"), ("node2", "redis"))
    target = cluster({"new-a": ["redis"], "new-b": ["redis"]})
    with pytest.raises(PreflightRefused, match=r"from 2 node\(s\) \(node1, node2\), stage has 1"):
        place(manifest, target, roles, RUN, nodes=["new-b"])


def test_node_skips_the_roles_it_does_not_carry(roles: dict[str, Role]) -> None:
    target = cluster({"db": ["postgresql", "redis"], "ctl": ["controller", "filesystem"]})
    placed = place(ONE_NODE, target, roles, RUN, nodes=["ctl"])
    assert sorted(pairs(placed)) == [("node1", "controller", "ctl"), ("node1", "filesystem", "ctl")]
    with pytest.raises(UsageError, match="nothing to import"):
        place(ONE_NODE, cluster({"db": ["postgresql"], "r": ["router"]}), roles, RUN, nodes=["r"])
    with pytest.raises(UsageError, match="has no node 'nowhere'"):
        place(ONE_NODE, target, roles, RUN, nodes=["nowhere"])


@pytest.mark.parametrize(("role", "kind"), [("postgresql", "tree"), ("controller", "stream")])
def test_a_kind_this_platform_does_not_export_is_refused(
    roles: dict[str, Role], role: str, kind: str
) -> None:
    manifest = manifest_of([Content("node1", role, DIR[role], kind, b"x").member()])
    with pytest.raises(PreflightRefused) as caught:
        place(manifest, cluster({"a": [role]}), roles, RUN)
    assert caught.value.exit_code == 7
    assert caught.value.message == (
        f"{manifest.members[0].name} is a {kind}, but role {role} here exports "
        f"{DIR[role]} as a {KIND[role]}"
    )


def test_a_member_of_an_unknown_role_is_not_silently_dropped(roles: dict[str, Role]) -> None:
    manifest = manifest_of(
        [*ONE_NODE.members, Content("node1", "mysql", "services", "stream", b"x").member()]
    )
    with pytest.raises(PreflightRefused, match="mysql"):
        place(manifest, cluster({"a": list(DATA_ROLES)}), roles, RUN)


# -- the paths an import works with ---------------------------------------------------------


def test_placement_paths_are_siblings_of_the_data_dir(roles: dict[str, Role]) -> None:
    placed = {
        p.member.role: p for p in place(ONE_NODE, cluster({"a": list(DATA_ROLES)}), roles, RUN)
    }
    pg, redis, controller = placed["postgresql"], placed["redis"], placed["controller"]
    assert pg.target.path == "/var/lib/kato/data/services/postgresql"
    assert (pg.parent, pg.base) == ("/var/lib/kato/data/services", "postgresql")
    assert pg.staging_dir == f"/var/lib/kato/data/services/{STAGING}{RUN}"
    assert pg.staged == f"/var/lib/kato/data/services/.kato-import-{RUN}/postgresql.dump"
    assert pg.previous == f"/var/lib/kato/data/services/.kato-previous-{RUN}/postgresql"
    assert redis.staging_dir == pg.staging_dir and redis.staged != pg.staged
    assert redis.previous == f"/var/lib/kato/data/services/{PREVIOUS}{RUN}/redis"
    assert controller.staging_dir == f"/var/lib/kato/data/.kato-import-{RUN}"
    assert controller.staged == f"/var/lib/kato/data/.kato-import-{RUN}/controller"  # a tree
    assert controller.previous == f"/var/lib/kato/data/.kato-previous-{RUN}/controller"
    for p in placed.values():
        for path in (p.staging_dir, p.staged, p.previous):
            assert path.startswith(p.parent + "/.kato-") and RUN in path
            assert not path.startswith(p.target.path + "/")


def test_another_run_gets_other_paths(roles: dict[str, Role]) -> None:
    target = cluster({"a": ["controller"]})
    first = place(ONE_NODE, target, roles, "run-1", only=["controller"])[0]
    second = place(ONE_NODE, target, roles, "run-2", only=["controller"])[0]
    assert {first.staging_dir, first.staged, first.previous}.isdisjoint(
        {second.staging_dir, second.staged, second.previous}
    )


# -- selection ------------------------------------------------------------------------------


def test_split_roles() -> None:
    assert split_roles(["a,b", " c ", "d,,", ""]) == ["a", "b", "c", "d"]
    assert split_roles(None) == []


def test_chosen_roles(roles: dict[str, Role]) -> None:
    assert chosen_roles(roles, (), ()) == set(DATA_ROLES)  # dea and router have no data
    assert chosen_roles(roles, ["redis", "router"], ()) == {"redis"}
    assert chosen_roles(roles, (), ["redis", "postgresql"]) == {"controller", "filesystem"}
    with pytest.raises(UsageError, match="--exclude names unknown role 'x'") as caught:
        chosen_roles(roles, (), ["x"])
    assert caught.value.hint and "controller, filesystem, postgresql, redis" in caught.value.hint


def test_data_dirs_in_role_order(roles: dict[str, Role]) -> None:
    target = cluster({"b": ["filesystem", "redis"], "a": ["controller", "postgresql", "dea"]})
    found = data_dirs(target, roles)
    assert [(d.node, d.role) for d in found] == [
        ("a", "postgresql"), ("b", "redis"), ("a", "controller"), ("b", "filesystem"),
    ]  # fmt: skip
    assert found[0].member == "data/a/postgresql/services.dump"
    assert found[0].shown == "a postgresql services"
    assert [d.role for d in data_dirs(target, roles, nodes=["b"], exclude=["redis"])] == [
        "filesystem"
    ]
