"""Where an import reads its archive from: a path must name a readable regular file, and
every other thing it can name is refused with what it is, before anything is asked of a node."""

from __future__ import annotations

import io
import os
import resource
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from kato.config import parse
from kato.data.source import archive_file, local_archive, parse_remote
from kato.errors import KatoError, UsageError
from kato.progress import SilentProgress


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


@pytest.fixture
def file_size_limit() -> Iterator[int]:
    """Writes past 64 KiB fail with EFBIG (RLIMIT_FSIZE, SIGXFSZ ignored): a spool disk that
    fills up, for real, without mounting one."""
    limit = 1 << 16
    before = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, before[1]))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, before)
        signal.signal(signal.SIGXFSZ, handler)


def spool(stdin: BinaryIO, directory: Path) -> None:
    cluster = parse({"name": "t", "core": "n1", "nodes": [
        {"name": "n1", "address": "192.0.2.1", "roles": []}]}, "c.yaml")  # fmt: skip
    with local_archive(
        cluster, "-", only=(), stdin=stdin, spool=directory, progress=SilentProgress()
    ):
        raise AssertionError("a spool that failed must not be imported from")


def test_a_spool_that_fills_up_is_refused_naming_it_and_leaves_nothing(
    tmp_path: Path, file_size_limit: int
) -> None:
    with pytest.raises(KatoError, match="keeping the archive in .* failed: File too large") as e:
        spool(io.BytesIO(bytes(4 * file_size_limit)), tmp_path)
    assert "--spool" in (e.value.hint or "")
    assert list(tmp_path.iterdir()) == []  # the partial copy is gone


def test_a_spool_directory_that_does_not_exist_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(KatoError, match="No such file or directory"):
        spool(io.BytesIO(b"x"), tmp_path / "nowhere")
