"""The output sink: outside text is shown with its control characters escaped."""

from __future__ import annotations

import pytest

from kato import output


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain [red]text[/bogus]", "plain [red]text[/bogus]"),
        ("\x1b[2J", "\\e[2J"),
        ("bell\x07", "bell\\x07"),
        ("two\nlines\ttab\r", "two\\nlines\\ttab\\r"),
        ("c1\x9b31m", "c1\\x9b31m"),
        ("del\x7f", "del\\x7f"),
        ("rtl\u202eevil", "rtl\\u202eevil"),
        ("ünïcødé ✓", "ünïcødé ✓"),
    ],
)
def test_visible_escapes_every_control_character(raw: str, shown: str) -> None:
    assert output.visible(raw) == shown


def test_visible_keeps_newlines_of_a_message_only_when_asked() -> None:
    assert output.visible("a\nb\x1b", lines=True) == "a\nb\\e"


def test_a_table_in_a_pipe_escapes_cells(capsys: pytest.CaptureFixture[str]) -> None:
    output.table(("NODE", "OUTPUT"), [("node1", "\x1b]0;title\x07[/bogus]")])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\e]0;title\\x07[/bogus]" in out


def test_messages_escape_controls_and_ignore_markup(capsys: pytest.CaptureFixture[str]) -> None:
    output.error("node1: \x1b[2J[/bogus] failed", "try [bold]again\x07")
    err = capsys.readouterr().err
    assert "\\e[2J[/bogus] failed" in err and "try [bold]again\\x07" in err
