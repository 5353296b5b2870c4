"""Safe writes: never through a planted link, in a checked directory, new file then rename."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kato.remote import safe_write
from kato.remote.safe_write import Unsafe, write_file


@pytest.fixture
def home(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)
    return tmp_path


def test_writes_a_new_file_with_its_mode(home: Path) -> None:
    target = home / "f"
    assert write_file(str(target), [b"ab", b"c"], 0o640) == 3
    assert target.read_bytes() == b"abc" and target.stat().st_mode & 0o777 == 0o640
    write_file(str(target), [b"new"], 0o600)
    assert target.read_bytes() == b"new" and sorted(p.name for p in home.iterdir()) == ["f"]


def test_a_link_at_the_target_is_refused_and_its_target_kept(home: Path) -> None:
    victim = home / "victim"
    victim.write_text("precious")
    (home / "f").symlink_to(victim)
    with pytest.raises(Unsafe, match=f"{home}/f is a symbolic link"):
        write_file(str(home / "f"), [b"evil"])
    assert victim.read_text() == "precious" and (home / "f").is_symlink()
    assert sorted(p.name for p in home.iterdir()) == ["f", "victim"]  # no temporary left


def test_a_link_in_the_directories_is_refused(home: Path) -> None:
    (home / "real").mkdir()
    (home / "linked").symlink_to(home / "real")
    with pytest.raises(Unsafe, match=f"{home}/linked is a symbolic link"):
        write_file(str(home / "linked" / "f"), [b"x"])
    assert list((home / "real").iterdir()) == []


def test_a_directory_others_may_write_is_refused(home: Path) -> None:
    (home / "open").mkdir()
    (home / "open").chmod(0o777)
    with pytest.raises(Unsafe, match="writable by other users"):
        write_file(str(home / "open" / "f"), [b"x"])


def test_missing_directories_are_made_only_when_asked(home: Path) -> None:
    with pytest.raises(Unsafe, match="no such directory"):
        write_file(str(home / "a" / "b"), [b"x"])
    write_file(str(home / "a" / "b"), [b"x"], create_dirs=0o750)
    assert (home / "a").stat().st_mode & 0o777 == 0o750


def test_append_never_follows_a_link(home: Path) -> None:
    victim = home / "victim"
    victim.write_text("precious")
    (home / "log").symlink_to(victim)
    with pytest.raises(Unsafe):
        safe_write.append_line(str(home / "log"), b"line\n")
    assert victim.read_text() == "precious"


def test_the_node_command_reads_the_program_then_the_data(home: Path) -> None:
    target = home / "uploaded"
    argv = safe_write.argv(str(target), 0o600)
    done = subprocess.run(
        (sys.executable, *argv[1:]), input=safe_write.prelude() + b"payload", capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == b"payload" and target.stat().st_mode & 0o777 == 0o600
    os.symlink(home / "victim", home / "planted")
    done = subprocess.run(
        (sys.executable, *safe_write.argv(str(home / "planted"))[1:]),
        input=safe_write.prelude() + b"evil",
        capture_output=True,
    )
    assert done.returncode == 1
    assert f"refused: {home}/planted is a symbolic link".encode() in done.stderr
    assert not (home / "victim").exists()


def test_the_transport_boots_the_program_as_it_does() -> None:
    from kato.transport import ssh

    assert ssh.SAFE_WRITE_BOOT == safe_write.BOOT
    assert ssh.SAFE_WRITE.read_text() == safe_write.source()
