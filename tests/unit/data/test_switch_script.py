"""The shell that switches one data dir on its node (switch_plan.SWITCH), run here as the node
runs it: the previous data dir goes into a private dir beside it, made 0700 or taken only as a
real directory of ours; a link or another user's dir planted at that name is refused before
anything moves, and what it points at is left as it was."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kato.data.switch_plan import SWITCH


def switch(parent: Path, name: str = "droplets") -> subprocess.CompletedProcess[str]:
    """Switch parent/name for the tree staged in parent/.kato-import-run/name."""
    staged = parent / ".kato-import-run" / name
    staged.mkdir(parents=True, exist_ok=True)
    (staged / "new").write_text("new data")
    previous = parent / ".kato-previous-run" / name
    argv = ["sh", "-c", SWITCH, "sh", str(parent / name), str(staged), str(previous), "tree",
            "0750", "0:0"]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def data_dir(parent: Path, name: str = "droplets") -> Path:
    path = parent / name
    path.mkdir(parents=True)
    (path / "old").write_text("old data")
    return path


def test_the_previous_data_goes_into_a_private_dir(tmp_path: Path) -> None:
    path = data_dir(tmp_path)
    done = switch(tmp_path)
    assert done.returncode == 0, done.stderr
    kept = tmp_path / ".kato-previous-run"
    assert kept.stat().st_mode & 0o777 == 0o700
    assert (kept / "droplets" / "old").read_text() == "old data"
    assert (path / "new").read_text() == "new data"


def test_a_second_data_dir_beside_the_first_uses_the_dir_it_made(tmp_path: Path) -> None:
    data_dir(tmp_path, "postgresql")
    data_dir(tmp_path, "redis")
    assert switch(tmp_path, "postgresql").returncode == 0
    done = switch(tmp_path, "redis")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".kato-previous-run" / "redis" / "old").read_text() == "old data"


def test_a_link_planted_at_the_previous_dir_is_refused_and_nothing_moves(tmp_path: Path) -> None:
    path = data_dir(tmp_path / "data")
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir(mode=0o755)
    os.chmod(elsewhere, 0o755)
    (tmp_path / "data" / ".kato-previous-run").symlink_to(elsewhere)
    done = switch(tmp_path / "data")
    assert done.returncode == 1
    assert "is not a directory of ours (a symbolic link?)" in done.stderr
    assert (path / "old").read_text() == "old data"  # the data dir was not moved
    assert list(elsewhere.iterdir()) == []
    assert elsewhere.stat().st_mode & 0o777 == 0o755  # no chmod through the link


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's directory")
def test_another_users_dir_at_the_previous_dir_is_refused(tmp_path: Path) -> None:
    path = data_dir(tmp_path)
    planted = tmp_path / ".kato-previous-run"
    planted.mkdir(mode=0o777)
    os.chown(planted, 65534, 65534)
    done = switch(tmp_path)
    assert done.returncode == 1
    assert (path / "old").read_text() == "old data"
    assert list(planted.iterdir()) == []
