"""kato/data/readback.py: several members read back at once, so the members that land in the
archive together at the end of a multi-node export are not checked one after the other."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

from kato.data.readback import Job, ReadBack
from kato.data.verify import ArchiveInvalid


def compressed(data: bytes) -> bytes:
    """A stream member's bytes as a node sends them: the data padded to 512, as zstd frames."""
    padded = data + bytes(-len(data) % 512)
    done = subprocess.run(("zstd", "-q", "-c"), input=padded, capture_output=True, check=True)
    return done.stdout


def archive(tmp_path: Path, *members: bytes) -> tuple[Path, list[int]]:
    """A file of the members' compressed bytes one after the other; where each starts."""
    path, starts, body = tmp_path / "archive", [], b""
    for data in members:
        starts.append(len(body))
        body += compressed(data)
    path.write_bytes(body)
    return path, [*starts, len(body)]


def close(readback: ReadBack, job: Job, end: int, data: bytes) -> None:
    readback.close(job, end, len(data), hashlib.sha256(data).hexdigest())


def test_a_later_member_is_checked_while_an_earlier_one_still_streams(tmp_path: Path) -> None:
    first, second = b"node1 " * 5000, b"node2 " * 7000
    path, at = archive(tmp_path, first, second)
    readback = ReadBack(path, str(path), workers=2)
    try:
        slow = readback.begin("data/node1/filesystem/droplets.tar", "stream", at[0])
        landed = readback.begin("data/node2/filesystem/droplets.tar", "stream", at[1])
        close(readback, landed, at[2], second)
        # one reader would wait for node1's member before it looks at node2's
        assert landed.checked.wait(10)
        assert not slow.checked.is_set()
        close(readback, slow, at[1], first)
        readback.finish()
    finally:
        readback.stop()
    assert slow.checked.is_set()


def test_a_later_member_that_does_not_match_fails_before_an_earlier_one_ends(
    tmp_path: Path,
) -> None:
    first, second = b"a" * 3000, b"b" * 3000
    path, at = archive(tmp_path, first, second)
    readback = ReadBack(path, str(path), workers=2)
    readback.begin("data/node1/filesystem/droplets.tar", "stream", at[0])  # never ends
    landed = readback.begin("data/node2/filesystem/droplets.tar", "stream", at[1])
    close(readback, landed, at[2], b"c" * 3000)
    deadline = time.monotonic() + 10
    while readback.failure is None and time.monotonic() < deadline:
        time.sleep(0.01)
    readback.stop()
    failure = readback.failure
    assert isinstance(failure, ArchiveInvalid)
    assert failure.member == "data/node2/filesystem/droplets.tar"
    assert "another sha256" in failure.problem
