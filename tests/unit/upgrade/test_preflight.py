"""The preflight's judgement (kato/upgrade/preflight.py) from captured facts, and the diff of
two releases (kato/upgrade/catalog.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kato.config import Cluster, NodeConfig
from kato.release import Release, load_release
from kato.status import NodeStatus, RoleStatus
from kato.transport.fanout import NodeFailure
from kato.upgrade.catalog import diff
from kato.upgrade.nodes import NodeReleases, RoleCopy, VersionOnNode
from kato.upgrade.preflight import Facts, judge
from kato.versions import Range

CLUSTER = Cluster(
    "test",
    "node1",
    (
        NodeConfig("node1", "198.18.0.11", 22, ("postgresql", "controller")),
        NodeConfig("node2", "198.18.0.12", 22, ("router", "dea")),
    ),
)
GIB = 1 << 30


def facts(repo: Path, target: str, running: str = "1.0.0", **changes: object) -> Facts:
    new, old = load_release(repo, target), load_release(repo, running)
    nodes = {n.name: NodeReleases(n.name, running, None, {}, GIB) for n in CLUSTER.nodes}
    health = {
        n.name: NodeStatus(
            n.name, n.address, running, tuple(RoleStatus(r, {}, "ok") for r in n.roles)
        )
        for n in CLUSTER.nodes
    }
    base = Facts(new, old, running, nodes, health, (), {}, None, {r: 100_000 for r in new.roles})
    return replace(base, **changes)  # type: ignore[arg-type]


def checks(result: object) -> list[str]:
    return [r.check for r in result.refusals]  # type: ignore[attr-defined]


def test_a_healthy_cluster_may_upgrade_and_gets_the_sequence(release_repo: Path) -> None:
    result = judge(CLUSTER, facts(release_repo, "1.2.0"), "in-place", False)
    assert result.ok and result.direction == "upgrade"
    assert [m.name for m in result.migrations] == ["controller-registry-v2"]
    assert result.sequence[0].startswith("stage 1.2.0 on every node")
    assert "export controller (controller) and verify the archive" in result.sequence[1]
    stops = [s for s in result.sequence if s.startswith("stop ")]
    assert stops[0].startswith("stop router") and stops[-1].startswith("stop postgresql")
    assert "migrate: controller-registry-v2 on node1" in result.sequence


def test_each_refusal_names_its_check(release_repo: Path) -> None:
    sick = {
        "node1": NodeStatus("node1", "a", "1.0.0", (RoleStatus("controller", {}, "failing: 503"),))
    }
    cases = {
        "healthy": facts(release_repo, "1.2.0", health=sick),
        "reachable": facts(
            release_repo, "1.2.0", unreachable=(NodeFailure("node2", "connect", "refused", 5),)
        ),
        "verified": facts(release_repo, "1.2.0", verified="sha256 mismatch"),
        "space": facts(
            release_repo,
            "1.2.0",
            nodes={n.name: NodeReleases(n.name, "1.0.0", None, {}, 10) for n in CLUSTER.nodes},
        ),
    }
    for check, found in cases.items():
        assert check in checks(judge(CLUSTER, found, "in-place", False)), check


def test_kato_outside_the_release_range_is_refused(release_repo: Path) -> None:
    found = facts(release_repo, "1.2.0")
    target = replace(found.target, kato=Range("9.0.0", None))
    result = judge(CLUSTER, replace(found, target=target), "in-place", False)
    assert checks(result) == ["kato version"]
    assert "install a kato in >= 9.0.0" in result.refusals[0].hint


def test_a_downgrade_needs_allow_downgrade_and_graceful_stays_in_a_major(
    release_repo: Path,
) -> None:
    back = facts(release_repo, "1.0.0", running="1.2.0")
    assert checks(judge(CLUSTER, back, "in-place", False)) == ["direction"]
    assert judge(CLUSTER, back, "in-place", True).ok
    major = judge(CLUSTER, facts(release_repo, "2.0.0"), "graceful", False)
    assert checks(major) == ["major"]
    assert judge(CLUSTER, facts(release_repo, "1.2.0"), "graceful", False).ok
    assert judge(CLUSTER, facts(release_repo, "2.0.0"), "in-place", False).ok


def test_mixed_versions_and_a_changed_staged_digest_are_refused(release_repo: Path) -> None:
    found = facts(release_repo, "1.2.0")
    staged = VersionOnNode({"router": RoleCopy("x" * 64, "")}, "f" * 64)
    nodes = {
        "node1": NodeReleases("node1", "1.0.0", None, {}, GIB),
        "node2": NodeReleases("node2", "1.1.0", None, {"1.2.0": staged}, GIB),
    }
    assert checks(judge(CLUSTER, replace(found, nodes=nodes), "in-place", False)) == [
        "one version",
        "digest",
    ]


def test_nothing_to_do_when_every_node_runs_the_target(release_repo: Path) -> None:
    result = judge(CLUSTER, facts(release_repo, "1.0.0"), "in-place", False)
    assert result.ok and result.nothing_to_do and result.direction == "same"


def test_diff_says_which_roles_are_redeployed_and_what_their_definition_changes(
    release_repo: Path,
) -> None:
    old, new = load_release(release_repo, "1.2.0"), load_release(release_repo, "1.2.1-broken")
    changes = {c.role: c for c in diff(old, new).roles}
    assert changes["controller"].action == "redeployed"
    assert changes["controller"].definition == ("health",)
    assert diff(old, new).migrations == ()  # 1.2.0 ran it already
    same: Release = old
    assert {c.action for c in diff(same, same).roles} == {"untouched"}
    back = diff(new, load_release(release_repo, "1.1.0"))
    assert back.direction == "downgrade" and [m.name for m in back.undone] == [
        "controller-registry-v2"
    ]


@pytest.mark.parametrize("version", ["1.2.0", "2.0.0"])
def test_every_reference_release_carries_every_role_definition(
    release_repo: Path, version: str
) -> None:
    release = load_release(release_repo, version)
    assert set(release.definitions) == set(release.roles)


def test_patches_installed_now_are_listed_as_not_carried(release_repo: Path) -> None:
    found = facts(release_repo, "1.2.0", patches={"node2": ("router-nosniff (for 1.0.0)",)})
    result = judge(CLUSTER, found, "in-place", False)
    assert result.ok and result.dropped_patches == ("node2: router-nosniff (for 1.0.0)",)
