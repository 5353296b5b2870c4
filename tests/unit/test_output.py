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


def test_in_a_pipe_rich_is_not_loaded_unless_its_settings_ask_for_it() -> None:
    """cron and scripts: plain text written as rich would write it, without rich's start-up."""
    import os
    import subprocess
    import sys

    said = (
        "import sys; from kato import output; output.info('- a step'); output.warn('w'); "
        "output.table(('A',), [('1',)]); print('rich' in sys.modules, 'rich.console' in "
        "sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    plain = subprocess.run((sys.executable, "-c", said), capture_output=True, text=True, env=env)
    assert plain.stderr == "- a step\nwarning: w\n"
    assert plain.stdout.splitlines()[-1] == "False False"
    forced = subprocess.run(
        (sys.executable, "-c", said),
        capture_output=True,
        text=True,
        env={**env, "FORCE_COLOR": "1"},
    )
    assert forced.stdout.splitlines()[-1] == "True True"
    assert "\x1b[33mwarning: w" in forced.stderr  # rich's own colours, as it decided
