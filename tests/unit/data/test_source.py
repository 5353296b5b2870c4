"""Where an import reads its archive from: a path must name a readable regular file, and
every other thing it can name is refused with what it is, before anything is asked of a node."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from kato.data.source import archive_file, parse_remote
from kato.errors import UsageError


def test_a_regular_file_is_the_archive(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(b"x")
    assert archive_file(str(archive)) == archive


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda p: None, "no such archive file"),
        (lambda p: p.mkdir(), "is a directory, not an archive file"),
        (lambda p: os.mkfifo(p), "is not a regular file"),
    ],
    ids=["missing", "directory", "fifo"],
)
def test_other_things_are_refused_by_what_they_are(
    tmp_path: Path, make: Callable[[Path], object], said: str
) -> None:
    path = tmp_path / "a.tar.zst"
    make(path)
    with pytest.raises(UsageError, match=said) as raised:
        archive_file(str(path))
    assert str(path) in raised.value.message


def test_a_socket_is_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(UsageError, match="not a regular file"):
            archive_file(str(path))


def test_a_path_through_a_file_names_the_system_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(UsageError, match="Not a directory"):
        archive_file(str(tmp_path / "f" / "a.tar.zst"))


def test_only_ssh_urls_are_remote_clusters() -> None:
    assert parse_remote("/backups/a.tar.zst") is None
    remote = parse_remote("ssh://root@old-core:2222")
    assert remote is not None and remote.shown == "ssh://root@old-core:2222"
    with pytest.raises(UsageError, match="is not ssh://"):
        parse_remote("ssh://old-core/path")
