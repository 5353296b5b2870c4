"""Reading pytest's JUnit report of the role checks."""

from __future__ import annotations

from pathlib import Path

from kato.config import parse
from kato.node_check import parse_report, ssh_config

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


def test_ssh_config_trusts_only_katos_known_hosts(tmp_path: Path) -> None:
    cluster = parse(
        {
            "name": "c",
            "core": "a",
            "ssh": {"known_hosts": "/k", "identity_file": "/i"},
            "nodes": [{"name": "a", "address": "10.0.0.1", "roles": []}],
        },
        "c.yaml",
    )
    text = ssh_config(cluster, cluster.nodes, tmp_path)
    assert "UserKnownHostsFile /k" in text and "StrictHostKeyChecking yes" in text
    assert "IdentityFile /i" in text and "HostName 10.0.0.1" in text
