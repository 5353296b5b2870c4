"""Fact parsers on captured output."""

from __future__ import annotations

from kato import facts
from kato.roles import Health
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


def test_health_checks_by_kind() -> None:
    http = facts.health_check(Health(timeout=30, http="http://127.0.0.1/healthz"), timeout=5)
    assert http.argv[:4] == ("curl", "-fsS", "-m", "5")
    tcp = facts.health_check(Health(timeout=9, tcp=("127.0.0.1", 5432)))
    assert tcp.argv[-3:] == ("127.0.0.1", "5432", "9")
    command = facts.health_check(Health(timeout=4, command=("redis-cli", "ping")))
    assert command.argv == ("timeout", "4", "redis-cli", "ping")
    assert command.parse(result("PONG")) is None
    assert command.parse(result("", 1, "Could not connect\n")) == "Could not connect"
