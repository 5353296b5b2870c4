"""The node program kato/remote/treesum.py on temporary trees: equal copies compare equal,
and every kind of difference a copy could have is found."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.remote import programs


def compare(src: Path, dst: Path, cache: Path) -> dict[str, object]:
    return programs.answer("treesum.py", "compare", src, dst, cache)


def make_tree(top: Path) -> None:
    (top / "sub dir").mkdir(parents=True)
    (top / "sub dir" / 'ünï "q"\nline').write_bytes(b"odd name")
    (top / "big").write_bytes(os.urandom(3 << 20))
    os.link(top / "big", top / "sub dir" / "hard")
    with open(top / "sparse", "wb") as handle:
        handle.truncate(50 << 20)
        handle.write(b"tail")
    (top / "link").symlink_to("../outside/never-followed")
    os.mkfifo(top / "fifo")
    os.setxattr(top / "big", "user.kato", b"value")


def copy(src: Path, dst: Path) -> None:
    """rsync as kato runs it, when it is here; else a copy that keeps links and xattrs."""
    if shutil.which("rsync"):
        subprocess.run(
            ("rsync", "-aHAX", "--numeric-ids", "--sparse", f"{src}/", f"{dst}/"), check=True
        )
    else:
        pytest.skip("needs rsync (scripts/setup installs it)")


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path, Path]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    copy(src, dst)
    return src, dst, tmp_path / "cache"


def test_an_rsync_copy_is_equal(trees: tuple[Path, Path, Path]) -> None:
    src, dst, cache = trees
    result = compare(src, dst, cache)
    assert result["equal"] is True, result["difference"]
    assert result["entries"] == 8
    assert result["difference"] is None


def _content(dst: Path) -> None:
    (dst / "big").write_bytes(b"changed")


def _same_size_content(dst: Path) -> None:
    data = bytearray((dst / "sub dir" / 'ünï "q"\nline').read_bytes())
    data[0] ^= 1
    stamp = (dst / "sub dir" / 'ünï "q"\nline').stat()
    (dst / "sub dir" / 'ünï "q"\nline').write_bytes(bytes(data))
    os.utime(dst / "sub dir" / 'ünï "q"\nline', ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def _broken_hard_link(dst: Path) -> None:
    (dst / "sub dir" / "hard").unlink()
    shutil.copy2(dst / "big", dst / "sub dir" / "hard")


def _mode(dst: Path) -> None:
    (dst / "sparse").chmod(0o600)


def _xattr(dst: Path) -> None:
    os.setxattr(dst / "big", "user.kato", b"other", follow_symlinks=False)


def _symlink_target(dst: Path) -> None:
    (dst / "link").unlink()
    (dst / "link").symlink_to("elsewhere")


def _missing(dst: Path) -> None:
    (dst / "fifo").unlink()


def _extra(dst: Path) -> None:
    (dst / "zz-extra").write_text("")


@pytest.mark.parametrize(
    "damage",
    [
        _content,
        _same_size_content,
        _broken_hard_link,
        _mode,
        _xattr,
        _symlink_target,
        _missing,
        _extra,
    ],  # fmt: skip
)
def test_every_difference_is_found(
    trees: tuple[Path, Path, Path], damage: Callable[[Path], None]
) -> None:
    src, dst, cache = trees
    assert compare(src, dst, cache)["equal"] is True  # warms the cache, as the live pass does
    damage(dst)
    result = compare(src, dst, cache)
    assert result["equal"] is False
    assert isinstance(result["difference"], str) and result["difference"]


def test_the_cache_skips_unchanged_files_but_not_changed_ones(
    trees: tuple[Path, Path, Path],
) -> None:
    src, dst, cache = trees
    compare(src, dst, cache)
    cached = json.loads((cache / "src.cache").read_text())
    assert "big" not in cached  # changed less than 2 s before the run: never trusted
    settled = (src / "big").stat().st_ctime_ns + 2_100_000_000
    while time.time_ns() < settled:
        time.sleep(0.1)
    compare(src, dst, cache)
    cached = json.loads((cache / "src.cache").read_text())
    # a poisoned cache entry for an unchanged file is believed (that is what saves the reading) ...
    cached["big"][4] = "0" * 64
    (cache / "src.cache").write_text(json.dumps(cached))
    assert compare(src, dst, cache)["equal"] is False
    # ... but any change to the file (its ctime moves) makes it read again
    os.chmod(src / "big", (src / "big").stat().st_mode)
    assert compare(src, dst, cache)["equal"] is True


def test_a_symlink_given_as_a_tree_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    done = programs.run("treesum.py", "compare", tmp_path / "alias", tmp_path / "real", "c")
    assert done.returncode == 1
    assert "is not a directory" in done.stderr
