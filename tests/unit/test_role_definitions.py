"""The one resolver of role definitions: each node follows the release it runs (the role.yaml
files its current release holds), else that version in the repository, else kato's bundled
definitions, saying which; and the callers use each node's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from kato import role_definitions
from kato.data.selection import data_dirs, not_defined
from kato.platform.control import plan_control
from kato.platform.install import plan_uninstall
from kato.role_definitions import ClusterRoles, NodeRoles, resolve
from kato.roles import RolesInvalid, in_start_order
from tests.unit.role_helpers import cluster, texts


def test_a_node_follows_the_definitions_its_release_carries(
    release_repo: Path, tmp_path: Path
) -> None:
    new = resolve(cluster(), "n1", "1.2.0", texts(release_repo, "1.2.0", tmp_path))
    old = resolve(cluster(), "n2", "1.1.0", texts(release_repo, "1.1.0", tmp_path))
    assert new.source == "release 1.2.0 on the node" and not new.bundled
    assert new.roles["controller"].health.http == "http://127.0.0.1:8181/healthz/registry"
    assert old.roles["controller"].health.http == "http://127.0.0.1:8181/healthz"
    assert set(new.roles["controller"].data_dirs) == {"controller", "audit"}


def test_without_files_on_the_node_the_repository_then_the_bundled_ones_answer(
    release_repo: Path,
) -> None:
    from_repo = resolve(cluster(release_repo), "n1", "1.2.0", {})
    assert from_repo.source == "release 1.2.0 in the repository"
    assert from_repo.roles["controller"].health.http.endswith("/healthz/registry")  # type: ignore[union-attr]
    unknown = resolve(cluster(release_repo), "n1", "9.9.9", {})
    assert unknown.bundled and unknown.source.endswith("(release 9.9.9 carries none)")
    fresh = resolve(cluster(), "n1", None, {})
    assert fresh.source == "kato's bundled definitions (no release installed)"
    assert fresh.roles["controller"] == role_definitions.bundled()["controller"]


def test_a_bad_role_yaml_on_a_node_is_refused_naming_where(
    release_repo: Path, tmp_path: Path
) -> None:
    found = texts(release_repo, "1.1.0", tmp_path)
    found["router"] = found["router"].replace("order:", "order: -3 #")
    with pytest.raises(RolesInvalid) as caught:
        resolve(cluster(), "n2", "1.1.0", found)
    assert "n2:/var/lib/kato/releases/1.1.0/router/role.yaml: order" in caught.value.message


def mixed(release_repo: Path, tmp_path: Path) -> ClusterRoles:
    return ClusterRoles(
        {
            "n1": resolve(cluster(), "n1", "1.2.0", texts(release_repo, "1.2.0", tmp_path)),
            "n2": resolve(cluster(), "n2", "1.1.0", texts(release_repo, "1.1.0", tmp_path)),
        }
    )


def test_in_a_mixed_cluster_each_node_exports_its_own_data_dirs(
    release_repo: Path, tmp_path: Path
) -> None:
    defined = mixed(release_repo, tmp_path)
    shown = [d.shown for d in data_dirs(cluster(), defined, only=["controller"])]
    assert shown == ["n1 controller audit", "n1 controller controller", "n2 controller controller"]


def test_in_a_mixed_cluster_each_node_is_controlled_with_its_own_units(
    release_repo: Path, tmp_path: Path
) -> None:
    defined = mixed(release_repo, tmp_path)
    ordered = list(in_start_order(defined.known().values()))
    plan = plan_control(cluster(), "restart", ordered, None, defined)
    assert {s.node for s in plan.steps if s.description == "restart controller"} == {"n1", "n2"}
    assert defined.sources() == [
        "n1: role definitions from release 1.2.0 on the node",
        "n2: role definitions from release 1.1.0 on the node",
    ]
    gone = plan_uninstall(cluster(), cluster().nodes, defined)
    assert any("kato-router.service" in s.argv for s in gone.steps if s.node == "n2")


def test_a_node_whose_release_lacks_a_role_plans_nothing_for_it(
    release_repo: Path, tmp_path: Path
) -> None:
    only_router = {"router": texts(release_repo, "1.1.0", tmp_path)["router"]}
    defined = ClusterRoles(
        {
            "n1": resolve(cluster(), "n1", "1.2.0", texts(release_repo, "1.2.0", tmp_path)),
            "n2": NodeRoles(
                "n2",
                "1.1.0",
                resolve(cluster(), "n2", "1.1.0", only_router).roles,
                "release 1.1.0 on the node",
            ),  # fmt: skip
        }
    )
    assert [d.shown for d in data_dirs(cluster(), defined, only=["controller"])] == [
        "n1 controller audit",
        "n1 controller controller",
    ]
    assert not_defined(cluster(), defined, only=["controller"]) == ["n2 controller"]
    assert not_defined(cluster(), defined, exclude=["controller"]) == []  # router: defined


def test_a_node_that_cannot_say_what_it_runs_stops_the_command_with_exit_5() -> None:
    from kato.connect import connections
    from kato.errors import ExitCode
    from kato.remote.agent import AGENT
    from kato.role_definitions import DefinitionsUnknown, of_nodes
    from tests.fakes import FakeCluster

    fake = FakeCluster(["node1", "node2"], roles=("router",))
    for node in fake.nodes.values():
        node.files[AGENT.directory] = b"shipped"
    fake.nodes["node2"].down = True
    with connections(fake.cluster, fake.factory) as conns:
        assert of_nodes(fake.cluster, conns, ["node1"]).nodes["node1"].bundled  # no release files
        with pytest.raises(DefinitionsUnknown) as caught:
            of_nodes(fake.cluster, conns, ["node1", "node2"])
    assert caught.value.exit_code == ExitCode.UNREACHABLE
    assert "cannot read the role definitions of node2" in caught.value.message
    assert "nothing was changed" in caught.value.message
