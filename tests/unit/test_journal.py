"""Secrets never reach the journal."""

from __future__ import annotations

from kato.journal import entry, mask


def test_secret_options_and_assignments_are_masked() -> None:
    argv = [
        "kato",
        "run",
        "--password",
        "hunter2",
        "--api-token=abc",
        "DB_PASSWORD=x",
        "--node",
        "node1",
        "PATH=/usr/bin",
    ]
    assert mask(argv) == [
        "kato",
        "run",
        "--password",
        "***",
        "--api-token=***",
        "DB_PASSWORD=***",
        "--node",
        "node1",
        "PATH=/usr/bin",
    ]


def test_entries_carry_format_time_and_operation() -> None:
    line = entry("abc", "step", node="node1", result="ok")
    assert line["format"] == 1 and line["operation"] == "abc" and line["event"] == "step"
    assert line["time"].endswith("Z")
