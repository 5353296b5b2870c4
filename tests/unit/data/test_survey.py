"""kato/data/survey.py: a data command's preparation costs one agent call per node that matters."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from kato.connect import connections
from kato.data.selection import data_dirs
from kato.data.survey import asked_nodes, dir_facts, free_beside, survey
from kato.errors import ExitCode, PreflightRefused
from kato.role_definitions import DefinitionsUnknown, roles_directory
from tests.unit.data.survey_nodes import DROPLETS, Nodes


def prepared(world: Nodes, only: tuple[str, ...] = ()) -> dict[str, object]:
    cluster = world.fake.cluster
    with connections(cluster, world.fake.factory) as conns:
        found = survey(cluster, conns, only=only, measure=True)
        sources = found.located(data_dirs(cluster, found.defined, only=only))
        return {s.path: f.size for s, f in dir_facts(found, conns, sources).items()}


def test_a_role_on_one_node_asks_that_node_once_and_no_other() -> None:
    world = Nodes()
    assert prepared(world, only=("filesystem",)) == {DROPLETS: 7}
    assert world.agent_calls() == {"node1": 1}
    assert world.fake.opened == ["node1"]  # one connection set, and only the node that matters


def test_every_node_once_with_relocated_data_dirs_measured_in_the_same_call() -> None:
    world = Nodes()
    world.records["node1"] = {
        "format": 1,
        "data_dirs": {"filesystem": {"droplets": {"path": "/mnt/ebs/droplets"}}},
    }
    found = prepared(world)
    assert found["/mnt/ebs/droplets"] == 7 and DROPLETS not in found
    assert world.agent_calls() == {"node1": 1, "node2": 1, "node3": 1}


def test_a_path_kato_could_not_foresee_costs_its_node_one_more_call() -> None:
    world = Nodes()
    text = (roles_directory() / "filesystem" / "role.yaml").read_text()
    world.texts["node1"] = {"filesystem": text.replace(DROPLETS, "/srv/elsewhere")}
    assert prepared(world, only=("filesystem",)) == {"/srv/elsewhere": 7}
    assert world.agent_calls() == {"node1": 2}
    last = json.loads(world.fake.ran("node1")[-1][3])
    assert last["dirs"] == ["/srv/elsewhere"]


def test_a_missing_data_dir_and_an_unreachable_node_stop_before_any_change() -> None:
    world = Nodes()
    world.missing.add(DROPLETS)
    with pytest.raises(PreflightRefused, match=f"node1: filesystem's data dir {DROPLETS} does"):
        prepared(world, only=("filesystem",))
    world = Nodes()
    world.fake.nodes["node2"].down = True
    with pytest.raises(DefinitionsUnknown) as caught:
        prepared(world, only=("dea",))
    assert caught.value.exit_code == ExitCode.UNREACHABLE
    assert {a[2].rsplit("/", 1)[-1] for _, a in world.fake.calls} == {"node_facts.py"}


def test_the_nodes_asked_are_those_carrying_a_chosen_role_and_the_core() -> None:
    cluster = Nodes().fake.cluster
    assert asked_nodes(cluster, (), ("dea",), ()) == ["node2", "node3", "node1"]
    assert asked_nodes(cluster, (), (), ("router", "dea")) == ["node1"]
    assert asked_nodes(cluster, ("node3",), (), ()) == ["node3", "node1"]


def test_an_import_learns_the_free_space_beside_its_data_dirs_in_the_same_call() -> None:
    world = Nodes()
    cluster = world.fake.cluster
    with connections(cluster, world.fake.factory) as conns:
        found = survey(cluster, conns, only=("filesystem",), beside=True)
        assert world.agent_calls() == {"node1": 1}
        free = free_beside(found, conns, [("node1", "/var/lib/kato/data")])
        assert free["node1"]["/var/lib/kato/data"]["free"] == 5 << 30
        assert world.agent_calls() == {"node1": 1}
        free_beside(found, conns, [("node1", "/mnt/ebs")])  # relocated there since: asked
        assert world.agent_calls() == {"node1": 2}
        assert json.loads(world.fake.ran("node1")[-1][3])["space"] == ["/mnt/ebs"]


def test_the_core_asked_only_for_its_version_measures_nothing() -> None:
    world = Nodes()
    node2 = replace(world.fake.cluster.nodes[1], roles=("filesystem",))
    cluster = replace(world.fake.cluster, nodes=(world.fake.cluster.nodes[0], node2))
    with connections(cluster, world.fake.factory) as conns:
        found = survey(cluster, conns, nodes=("node2",), measure=True, beside=True)
    assert found.version == "1.0.0" and world.agent_calls() == {"node2": 1, "node1": 1}
    core = json.loads(world.fake.ran("node1")[-1][3])
    assert "dirs" not in core and not core["space"]
    assert json.loads(world.fake.ran("node2")[-1][3])["dirs"]  # node2's own are measured
