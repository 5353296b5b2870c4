"""kato/data/writeback.py: the archive is flushed while it grows; a flush's error is not lost."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from kato.data import writeback
from kato.data.archive import ArchiveWriteFailed
from kato.data.writeback import WriteBack


class Flushes:
    """os.fdatasync as the kernel would do it, noting each file size it was called at."""

    def __init__(self, fail: OSError | None = None) -> None:
        self.sizes: list[int] = []
        self.fail = fail

    def __call__(self, fd: int) -> None:
        if self.fail is not None:
            raise self.fail
        self.sizes.append(os.fstat(fd).st_size)
        os.fsync(fd)


def _grow(fd: int, pieces: int, seen: Flushes) -> None:
    """Write `pieces` pieces of 1 KiB, each once the one before was flushed (or 2 s passed)."""
    for piece in range(pieces):
        os.write(fd, b"x" * 1024)
        deadline = time.monotonic() + 2
        while len(seen.sizes) <= piece and seen.fail is None and time.monotonic() < deadline:
            time.sleep(0.005)


def _failed(back: WriteBack) -> None:
    """Wait (up to 2 s) until the thread met its failing flush."""
    deadline = time.monotonic() + 2
    while back.failure is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert back.failure is not None


@pytest.fixture
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writeback, "STEP", 1024)
    monkeypatch.setattr(writeback, "POLL", 0.001)


def test_the_file_is_flushed_while_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_steps: None
) -> None:
    seen = Flushes()
    monkeypatch.setattr(os, "fdatasync", seen)
    with (tmp_path / "archive").open("wb", buffering=0) as file, WriteBack(file.fileno()):
        _grow(file.fileno(), 3, seen)
    assert seen.sizes == [1024, 2048, 3072]  # each step as it came, none twice


def test_a_failed_flush_is_raised_when_the_writing_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_steps: None
) -> None:
    seen = Flushes(OSError(errno.EIO, os.strerror(errno.EIO)))
    monkeypatch.setattr(os, "fdatasync", seen)
    with (
        pytest.raises(ArchiveWriteFailed) as raised,
        (tmp_path / "archive").open("wb", buffering=0) as file,
        WriteBack(file.fileno()) as back,
    ):
        _grow(file.fileno(), 1, seen)
        _failed(back)  # raised as the block ends
    assert raised.value.errno == errno.EIO
    assert "writing the archive: Input/output error" in str(raised.value)


def test_the_writing_s_own_error_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_steps: None
) -> None:
    seen = Flushes(OSError(errno.EIO, os.strerror(errno.EIO)))
    monkeypatch.setattr(os, "fdatasync", seen)
    with (
        pytest.raises(ValueError, match="the writer's own"),
        (tmp_path / "archive").open("wb", buffering=0) as file,
        WriteBack(file.fileno()) as back,
    ):
        _grow(file.fileno(), 1, seen)
        _failed(back)
        raise ValueError("the writer's own")
