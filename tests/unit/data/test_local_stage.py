"""The shell that stages a member decompressed on the core (format 1, gzip archives), run here
as the node runs it: the staging dir is made private, or taken only as a real directory of
ours; a link planted at its name is refused, its target left as it was."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from kato.data.local_stage import STAGE_DUMP, STAGE_TREE

DUMP = b"COPY t FROM stdin;\n1\n\\.\n"


def tree() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("./file")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"data"))
    return out.getvalue()


def staged(script: str, staging: Path, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    member = staging / "member"
    argv = ["sh", "-c", script, "sh", str(staging), str(member)]
    if script is STAGE_DUMP:
        argv.append(hashlib.sha256(stdin).hexdigest())
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=60)


def test_a_tree_is_staged_in_a_private_dir(tmp_path: Path) -> None:
    staging = tmp_path / ".kato-import-abc"
    done = staged(STAGE_TREE, staging, tree())
    assert done.returncode == 0, done.stderr
    assert staging.stat().st_mode & 0o777 == 0o700
    assert (staging / "member" / "file").read_bytes() == b"data"


def test_a_dump_is_staged_in_the_dir_an_earlier_member_made(tmp_path: Path) -> None:
    staging = tmp_path / ".kato-import-abc"
    staging.mkdir(mode=0o700)  # made by an earlier member of the same import
    done = staged(STAGE_DUMP, staging, DUMP)
    assert done.returncode == 0, done.stderr
    assert (staging / "member").read_bytes() == DUMP


@pytest.mark.parametrize(("script", "data"), [(STAGE_TREE, tree()), (STAGE_DUMP, DUMP)])
def test_a_link_planted_at_the_staging_dir_is_refused(
    tmp_path: Path, script: str, data: bytes
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    staging = tmp_path / ".kato-import-abc"
    staging.symlink_to(target)
    done = staged(script, staging, data)
    assert done.returncode == 1
    assert b"is not a directory of ours (a symbolic link?): refusing to stage" in done.stderr
    assert target.stat().st_mode & 0o777 == 0o755  # no chmod through the link
    assert list(target.iterdir()) == []  # nothing written through it
    assert staging.is_symlink()
