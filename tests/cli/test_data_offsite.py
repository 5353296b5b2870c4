"""The off-site options on the command line: refusals are exit 2 and change nothing."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from kato.cli.app import app

runner = CliRunner()
CLUSTER = """
name: prod
core: node1
nodes: [{name: node1, address: 192.0.2.1, roles: [redis]}]
"""


def cluster_file(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "cluster.yaml"
    path.write_text(CLUSTER + extra)
    return str(path)


def test_export_to_a_local_path_is_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["--cluster", cluster_file(tmp_path), "data", "export", str(tmp_path), "--to", "/x"]
    )
    assert result.exit_code == 2 and "is not REMOTE:PATH" in result.output
    assert list(tmp_path.iterdir()) == [tmp_path / "cluster.yaml"]


def test_export_to_without_an_rclone_config_is_exit_2(tmp_path: Path) -> None:
    argv = ["--cluster", cluster_file(tmp_path), "data", "export", str(tmp_path), "--to", "b:x"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2 and "names no rclone config" in result.output


def test_backups_of_a_remote_whose_config_is_missing_is_exit_2(tmp_path: Path) -> None:
    extra = f"offsite: {{rclone_config: {tmp_path / 'rclone.conf'}}}\n"
    argv = ["--cluster", cluster_file(tmp_path, extra), "data", "backups", "b:kato"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2 and "does not exist" in result.output
