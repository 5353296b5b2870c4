"""`kato relocate` on the command line: usage errors are exit 2 before any node is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kato.cli.app import app

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "conf" / "cluster.yaml"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["droplet", "/mnt/x"], "the data dirs are: containers, controller, droplets, services"),
        (["droplets", "mnt/x"], "is not an absolute path"),
        (["droplets", "/mnt/x/"], "must be a normalised path"),
        (["droplets"], "kato relocate droplets needs NEW_LOCATION"),
        (["status", "/mnt/x"], "kato relocate status takes no NEW_LOCATION"),
        (["containers", "/mnt/x", "--app-limit", "lots"], "disk size 'lots' is not valid"),
    ],
)
def test_usage_errors_are_exit_2_and_contact_no_node(args: list[str], says: str) -> None:
    result = runner.invoke(app, ["--cluster", str(EXAMPLE), "relocate", *args])
    assert result.exit_code == 2, result.stderr
    assert says in result.stderr
