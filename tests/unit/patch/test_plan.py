"""Planning an install or a revert, and the status report, from captured node states."""

from __future__ import annotations

from pathlib import Path

import pytest

from kato.config import Cluster, NodeConfig
from kato.errors import PreflightRefused
from kato.patch.install import applicable, in_rollout_order, plan_node
from kato.patch.nodes import Applied, NodePatches
from kato.patch.repository import Fetched, Patch, PatchIndex
from kato.patch.revert import plan_revert
from kato.patch.status import render, summarize
from kato.roles import load_roles
from kato.status import roles_directory
from kato.transport.fanout import FanOut

ROLES = load_roles(roles_directory())
ROUTER = Patch(
    "router-fix", "fix the router", "required", ("router",), ("1.0.0",), "r.tar.gz", "a" * 64, 1
)
BOTH = Patch(
    "apps-fix", "fix apps", "optional", ("dea", "router"), ("1.0.0",), "b.tar.gz", "b" * 64, 1
)
OTHER = Patch(
    "new-fix", "for 1.1.0", "optional", ("controller",), ("1.1.0",), "c.tar.gz", "c" * 64, 1
)
NODE2 = NodeConfig("node2", "198.18.0.12", 22, ("router", "dea"))
CLUSTER = Cluster(
    "test",
    "node1",
    (
        NodeConfig("node1", "198.18.0.11", 22, ("controller",)),
        NODE2,
        NodeConfig("node3", "198.18.0.13", 22, ("router", "dea")),
    ),
)


def fetched(*patches: Patch) -> list[Fetched]:
    return [
        Fetched(p, Path(f"/tmp/{p.name}.tar.gz"), {r: ("f.conf",) for r in p.roles})
        for p in patches
    ]


def test_a_node_gets_one_upload_and_apply_call_per_patch_and_restarts_in_role_order() -> None:
    work, notes = plan_node(
        NODE2, NodePatches("node2", "1.0.0"), fetched(ROUTER, BOTH), ROLES, True
    )
    assert work is not None and notes == []
    # one node call per patch: the artifact streamed into the patch agent, which writes it
    # to the private staging dir and checks its sha256 before laying anything (no stage step)
    assert work.stage == ()
    assert [s.description.split(":")[0] for s in work.change] == [
        "apply router-fix",
        "apply apps-fix",
    ]
    assert [s.upload for s in work.change] == ["/tmp/router-fix.tar.gz", "/tmp/apps-fix.tar.gz"]
    assert all(s.argv[4] == "receive-apply" for s in work.change)
    assert [r.name for r in work.roles] == ["dea", "router"]
    shown = [s.description for s in work.shown()]
    assert shown[-3:] == [
        "restart dea",
        "restart router",
        "wait until dea, router are healthy (up to 30s)",  # one node call restarts and waits
    ]
    assert work.shown()[-1].argv[-1].endswith("/role_cycle.py") and work.shown()[-1].stdin


def test_an_applied_patch_is_left_alone_and_no_restart_means_none() -> None:
    state = NodePatches(
        "node2", "1.0.0", {"router-fix": Applied("router-fix", "a" * 64, "1.0.0", ("router",), 0.0)}
    )
    work, _ = plan_node(NODE2, state, fetched(ROUTER), ROLES, True)
    assert work is None
    work, _ = plan_node(NODE2, NodePatches("node2", "1.0.0"), fetched(ROUTER), ROLES, False)
    assert work is not None and work.roles == ()


def test_a_pending_restart_is_done_by_the_next_install() -> None:
    applied = Applied("router-fix", "a" * 64, "1.0.0", ("router",), 0.0, ("router",))
    work, _ = plan_node(
        NODE2, NodePatches("node2", "1.0.0", {"router-fix": applied}), fetched(ROUTER), ROLES, True
    )
    assert work is not None and work.change == () and [r.name for r in work.roles] == ["router"]


def test_a_node_on_another_version_is_skipped_with_a_line() -> None:
    work, notes = plan_node(NODE2, NodePatches("node2", "1.1.0"), fetched(ROUTER), ROLES, True)
    assert work is None
    assert notes == ["node2: runs platform 1.1.0, router-fix is for 1.0.0: not patched"]


def test_a_named_patch_for_no_version_of_the_cluster_is_refused() -> None:
    assert applicable((ROUTER, OTHER), False, {"1.0.0"}) == (ROUTER,)
    with pytest.raises(PreflightRefused, match="new-fix applies to platform 1.1.0"):
        applicable((OTHER,), True, {"1.0.0"})


def test_the_canary_goes_first_and_must_have_work() -> None:
    works = [
        plan_node(n, NodePatches(n.name, "1.0.0"), fetched(ROUTER), ROLES, True)[0]
        for n in CLUSTER.nodes[1:]
    ]
    assert [w.node for w in in_rollout_order([w for w in works if w], "node3")] == [
        "node3",
        "node2",
    ]
    with pytest.raises(Exception, match="nothing to install"):
        in_rollout_order([w for w in works if w], "node1")


def test_revert_only_where_applied_or_interrupted() -> None:
    applied = Applied("router-fix", "a" * 64, "1.0.0", ("router",), 0.0)
    work = plan_revert(
        NODE2, NodePatches("node2", "1.0.0", {"router-fix": applied}), "router-fix", ROLES, True
    )
    assert work is not None and [r.name for r in work.roles] == ["router"]
    half = plan_revert(
        NODE2, NodePatches("node2", "1.0.0", interrupted=("router-fix",)), "router-fix", ROLES, True
    )
    assert half is not None and half.roles == ()
    assert plan_revert(NODE2, NodePatches("node2", "1.0.0"), "router-fix", ROLES, True) is None


def test_status_counts_flags_and_renders_like_stackato() -> None:
    applied = Applied("router-fix", "a" * 64, "1.0.0", ("router",), 0.0, ("router",))
    states = FanOut(
        {
            "node1": NodePatches("node1", "1.0.0"),
            "node2": NodePatches("node2", "1.0.0", {"router-fix": applied}),
            "node3": NodePatches("node3", "1.1.0"),
        }
    )
    report = summarize(CLUSTER, PatchIndex("kato-reference", (ROUTER, BOTH, OTHER)), states)
    assert report.version == "1.0.0" and report.available == 1
    rows = {r.name: r for r in report.patches}
    assert set(rows) == {"router-fix", "apps-fix"}
    assert (rows["router-fix"].installed, rows["router-fix"].missing) == (("node2",), ())
    assert rows["router-fix"].restart_pending == ("node2",)
    lines = render(report)
    assert lines[:3] == [
        "1 update available to be installed.",
        "",
        "Known updates for kato-reference 1.0.0:",
    ]
    assert "  router-fix: fix the router" in lines
    assert "    restart pending on: node2" in lines
    assert lines[-1] == "node3: runs platform 1.1.0, not 1.0.0: flagged, not patched"
