"""`treesum.py copy` on temporary trees: the files' bytes are copied with the source's
checksums made on the way, rsync afterwards finds them up to date and copies the rest, and the
compare that follows trusts those checksums instead of reading the source again."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.remote import programs
from tests.unit.remote.test_treesum import compare, copy, make_tree

ODD = Path("sub dir") / 'ünï "q"\nline'


def copy_files(src: Path, dst: Path, cache: Path) -> dict[str, object]:
    return programs.answer("treesum.py", "copy", src, dst, cache)


def settle(path: Path) -> None:
    """Wait until path's last change is older than the 2 s a checksum needs to be kept."""
    settled = path.stat().st_ctime_ns + 2_100_000_000
    while time.time_ns() < settled:
        time.sleep(0.1)


def test_plain_files_are_copied_and_rsync_then_finds_them_up_to_date(tmp_path: Path) -> None:
    src, dst, cache = tmp_path / "src", tmp_path / "dst", tmp_path / "cache"
    make_tree(src)
    done = copy_files(src, dst, cache)
    # the odd name and the sparse file; the hard-linked pair, the link and the fifo are rsync's
    assert done["files"] == 2
    assert done["bytes"] == len(b"odd name") + (50 << 20)
    assert (dst / ODD).read_bytes() == b"odd name"
    assert (dst / ODD).stat().st_mtime_ns == (src / ODD).stat().st_mtime_ns
    assert (dst / "sparse").stat().st_blocks * 512 <= 1 << 20  # the holes stay holes (of 50 MiB)
    assert not (dst / "big").exists() and not (dst / "link").exists()
    inode = (dst / "sparse").stat().st_ino
    copy(src, dst)  # rsync -aHAX, as the live copy runs it after
    assert (dst / "sparse").stat().st_ino == inode  # not copied again
    assert compare(src, dst, cache)["equal"] is True


def test_the_compare_after_the_copy_uses_the_checksums_it_made(tmp_path: Path) -> None:
    src, dst, cache = tmp_path / "src", tmp_path / "dst", tmp_path / "cache"
    make_tree(src)
    settle(src / "sparse")
    done = copy_files(src, dst, cache)
    assert done["cached"] == 2
    cached = json.loads((cache / "src.cache").read_text())
    st = (src / "sparse").stat()
    assert cached["sparse"][:4] == [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    assert cached["sparse"][4] == hashlib.sha256((src / "sparse").read_bytes()).hexdigest()
    copy(src, dst)
    # a poisoned checksum is believed: the source was not read again ...
    cached["sparse"][4] = "0" * 64
    (cache / "src.cache").write_text(json.dumps(cached))
    assert compare(src, dst, cache)["equal"] is False
    # ... and a changed source file (its ctime moves) is read again
    (src / "sparse").chmod((src / "sparse").stat().st_mode)
    assert compare(src, dst, cache)["equal"] is True


def test_what_is_already_there_is_left_to_rsync(tmp_path: Path) -> None:
    src, dst, cache = tmp_path / "src", tmp_path / "dst", tmp_path / "cache"
    make_tree(src)
    outside = tmp_path / "outside"
    outside.mkdir()
    dst.mkdir()
    (dst / "sparse").write_bytes(b"an earlier, cut copy")
    (dst / "sub dir").symlink_to(outside)
    done = copy_files(src, dst, cache)
    assert done["files"] == 0
    assert (dst / "sparse").read_bytes() == b"an earlier, cut copy"
    assert list(outside.iterdir()) == []  # never written through the link


def test_a_missing_source_is_refused(tmp_path: Path) -> None:
    done = programs.run("treesum.py", "copy", tmp_path / "gone", tmp_path / "dst", "c")
    assert done.returncode == 1
    assert "is not a directory" in done.stderr
    assert not (tmp_path / "dst").exists()


def test_a_source_dir_swapped_for_a_link_mid_copy_leads_nowhere_outside_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data dir's owner can swap a directory of the source for a link to anywhere while
    the copy (root) walks it: the copy reads through the directory it listed, never by path."""
    from kato.remote import treesum

    src, dst, cache = tmp_path / "src", tmp_path / "dst", tmp_path / "cache"
    (src / "app").mkdir(parents=True)
    (src / "app" / "secret").write_bytes(b"the app's own bytes")
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "secret").write_bytes(b"root's secret")

    def swapping(real: Any) -> Any:
        def walk(*args: Any, **kwargs: Any) -> Any:
            for listed in real(*args, **kwargs):
                if listed[0].endswith("/app"):  # listed; now swapped before any file is read
                    (src / "app").rename(src / "app.was")
                    (src / "app").symlink_to(outside)
                    assert (src / "app" / "secret").read_bytes() == b"root's secret"  # by path
                yield listed

        return walk

    for walker in ("walk", "fwalk"):  # whichever the copy walks with
        monkeypatch.setattr(os, walker, swapping(getattr(os, walker)))
    treesum.copy_files(str(src), str(dst), str(cache))
    assert (dst / "app" / "secret").read_bytes() == b"the app's own bytes"
