"""Planning a sandbox: names, addresses, roles and the state file round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from kato.errors import UsageError
from kato.sandbox import model


def test_plan_gives_each_node_an_address_a_mac_and_roles() -> None:
    sandbox = model.plan_sandbox("demo", 3, "198.18.7.0/24", image="/img")
    assert [n.name for n in sandbox.nodes] == ["node1", "node2", "node3"]
    assert [n.address for n in sandbox.nodes] == ["198.18.7.11", "198.18.7.12", "198.18.7.13"]
    assert len({n.mac for n in sandbox.nodes}) == 3
    assert sandbox.gateway == "198.18.7.1"
    assert sandbox.core.roles == model.CORE_ROLES
    assert sandbox.nodes[1].roles == sandbox.nodes[2].roles == model.EDGE_ROLES


def test_a_single_node_carries_every_role() -> None:
    (only,) = model.plan_sandbox("one", 1, "198.18.8.0/24", image="/img").nodes
    assert set(only.roles) == set(model.CORE_ROLES + model.EDGE_ROLES)


@pytest.mark.parametrize("count", [0, -1, model.MAX_NODES + 1])
def test_node_count_out_of_range_is_a_usage_error(count: int) -> None:
    with pytest.raises(UsageError, match="--nodes"):
        model.plan_sandbox("demo", count, "198.18.7.0/24", image="/img")


@pytest.mark.parametrize(
    "name", ["", "Demo", "1st", "a-b", "has space", "$(touch x)", "twelvechars1"]
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError):
        model.validate_name(name)


def test_device_names_fit_the_kernel_limit() -> None:
    sandbox = model.plan_sandbox("elevenchars", model.MAX_NODES, "198.18.9.0/24", image="/i")
    assert len(sandbox.bridge) <= 15
    assert all(len(sandbox.veth(n)) <= 15 for n in sandbox.nodes)
    assert len({sandbox.veth(n) for n in sandbox.nodes}) == model.MAX_NODES


def test_state_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATO_SANDBOX_HOME", str(tmp_path))
    planned = model.plan_sandbox("demo", 2, "198.18.7.0/24", image="/img")
    model.save(planned)
    assert model.load("demo") == planned
    assert model.load("other") is None
    with pytest.raises(UsageError, match="no sandbox named 'other'"):
        model.require("other")


def test_unknown_node_lists_the_known_ones() -> None:
    sandbox = model.plan_sandbox("demo", 2, "198.18.7.0/24", image="/img")
    with pytest.raises(UsageError) as caught:
        sandbox.node("node9")
    assert caught.value.hint == "nodes: node1, node2"
