"""Reading pytest's JUnit report of the role checks."""

from __future__ import annotations

from kato.node_check import parse_report

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
