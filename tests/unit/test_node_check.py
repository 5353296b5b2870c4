"""Reading pytest's JUnit report of the role checks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from kato.datadirs import Locations
from kato.node_check import parse_report, plan_node
from kato.node_check_backend import role_data_dirs
from kato.role_definitions import resolve
from kato.status import roles_directory
from tests.unit.role_helpers import cluster, texts

REPORT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="test_router" name="test_listens_on_port_80[ssh://node2]" time="0.1"/>
<testcase classname="test_router" name="test_healthz[ssh://node2]" time="0.1">
<failure message="AssertionError: assert 502 == 200&#10;more">trace</failure></testcase>
</testsuite></testsuites>"""


def test_each_case_becomes_a_check_with_its_first_failure_line() -> None:
    checks = parse_report(REPORT, "node2")
    assert [(c.role, c.name, c.passed) for c in checks] == [
        ("router", "test_listens_on_port_80", True),
        ("router", "test_healthz", False),
    ]
    assert checks[1].message == "AssertionError: assert 502 == 200"


def test_each_node_is_checked_as_its_release_defines_its_roles(
    release_repo: Path, tmp_path: Path
) -> None:
    """n1 runs 1.2.0: its controller's checks get both data dirs, the moved one where it lives
    now; a role the node's release does not define is a failed check, not a silent pass."""
    mine = resolve(cluster(), "n1", "1.2.0", texts(release_repo, "1.2.0", tmp_path))
    roles = {"controller": mine.roles["controller"]}
    where = Locations(moved={"controller": {"audit": "/mnt/ebs/a/controller"}})
    plan = plan_node(roles_directory(), replace(mine, roles=roles), where, ["controller", "redis"])
    assert plan.files == [str(roles_directory() / "controller" / "test_controller.py")]
    assert plan.data_dirs == {
        "controller": {
            "controller": "/var/lib/kato/data/controller",
            "audit": "/mnt/ebs/a/controller",
        },  # fmt: skip
    }
    assert [(c.role, c.name, c.passed, c.message) for c in plan.undefined] == [
        (
            "redis",
            "defined_by_its_release",
            False,
            "release 1.2.0 on the node defines no redis role",
        )
    ]
    given = json.dumps(plan.data_dirs)
    assert role_data_dirs("test_controller", given) == plan.data_dirs["controller"]
    assert role_data_dirs("roles.redis.test_redis", given) == {}
