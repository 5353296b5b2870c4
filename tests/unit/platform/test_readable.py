"""The readable --dry-run plan: one line per node per item; short commands shown inline."""

from __future__ import annotations

from kato.plan import Plan
from kato.platform.control import plan_control
from kato.platform.install import Installed, plan_node
from kato.platform.readable import itemized
from tests.unit.platform.test_install import ARTIFACTS, CLUSTER, ROLES


def test_an_install_reads_as_one_line_per_role_units_and_switch() -> None:
    node = CLUSTER.node("n2")
    have = Installed("0.9.0", {}, {}, {})
    steps = plan_node(CLUSTER, node, [ROLES["dea"], ROLES["router"]], ARTIFACTS, have)
    plan = Plan("install 1.1.0", tuple(itemized(steps, "1.0.0", {"dea": 31 * 1024}, "0.9.0")))
    lines = plan.readable()
    assert lines[0] == "n2: make the private staging dir (install -d -m 0700 /var/lib/kato/staging)"
    assert lines[1:3] == ["n2: install dea 1.0.0 (31 KiB)", "n2: install router 1.0.0"]
    assert "n2: install units kato-dea.service, kato-router.service" in lines
    assert lines[-2:] == [
        "n2: switch current to 1.0.0 (from 0.9.0)",
        "n2: reload systemd and enable the role units",
    ]
    assert len(lines) < len(steps) / 2


def test_a_stop_shows_its_short_command() -> None:
    plan = plan_control(CLUSTER, "stop", [ROLES["router"]], None)
    assert plan.readable() == ["n2: stop router (systemctl stop -- kato-router.service)"]
