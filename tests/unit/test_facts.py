"""Fact parsers on captured output."""

from __future__ import annotations

from kato import facts
from kato.transport.base import CommandResult


def result(stdout: str, status: int = 0, stderr: str = "") -> CommandResult:
    return CommandResult("n", ("x",), status, stdout, stderr, 0.0)


def test_platform_version_from_the_current_link() -> None:
    assert facts.platform_version.parse(result("1.0.0\n")) == "1.0.0"
    assert facts.platform_version.parse(result("", 1)) is None


def test_unit_states_in_order_whatever_the_exit_status() -> None:
    fact = facts.unit_states(["a.service", "b.service"])
    assert fact.argv == ("systemctl", "is-active", "--", "a.service", "b.service")
    assert fact.parse(result("active\ninactive\n", 3)) == {
        "a.service": "active",
        "b.service": "inactive",
    }


def test_unit_states_says_unknown_for_a_unit_systemd_printed_nothing_for() -> None:
    fact = facts.unit_states(("a.service", "b.service"))
    assert fact.parse(result("active\n", 1)) == {"a.service": "active", "b.service": "unknown"}
