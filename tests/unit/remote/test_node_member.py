"""Import's check of a member on its node (kato/remote/node_member.py, run by node_data.py as
kato runs it): a tree GNU tar wrote passes and is staged; a tree with a link out, a device, an
entry more or fewer than listed, a wrong sha256, data after its end, a cut or a tree without
its end blocks is refused with verify's words and leaves nothing staged."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.unit.remote.test_node_data import run

BLOCK = 512


def gnu_tar(root: Path) -> tuple[bytes, int]:
    """root's tar as export writes it (GNU tar through node_data.py) and its entry count."""
    status, out, sent = run("export", "tree", str(root))
    assert status == 0 and sent is not None and sent.status == 0
    tree = subprocess.run(("zstd", "-d", "-c"), input=out, capture_output=True, check=True)
    return tree.stdout[: sent.size], 1 + sum(len(d) + len(f) for _, d, f in os.walk(root))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "state.db").write_bytes(os.urandom(200_000))
    (root / "notes.txt").write_text("kept\n" * 1000)
    (root / "current").symlink_to("sub/state.db")
    return root


def staged(
    tmp_path: Path, member: bytes, sent: bytes | None = None, **told: str
) -> tuple[int, object, Path]:
    """Stage `sent` (the member's bytes as the archive holds them: `member` padded to 512 by
    default) on 'the node' as a tree of `member`'s size and sha256 unless `told` otherwise."""
    sent = member + bytes(-len(member) % BLOCK) if sent is None else sent
    packed = subprocess.run(("zstd", "-q", "-c"), input=sent, capture_output=True, check=True)
    target = tmp_path / "staging" / "data"
    size = told.get("size", str(len(member)))
    sha = told.get("sha256", hashlib.sha256(member).hexdigest())
    args = ("import", "tree", str(target.parent), str(target), size, sha, told["listed"])
    status, _, answer = run(*args, data=packed.stdout)
    return status, answer, target


def test_a_tree_gnu_tar_wrote_passes_and_is_staged(data_dir: Path, tmp_path: Path) -> None:
    tree, count = gnu_tar(data_dir)
    status, answer, target = staged(tmp_path, tree, tree + bytes(2 * BLOCK), listed=str(count))
    assert status == 0, answer
    assert (target / "sub" / "state.db").read_bytes() == (
        data_dir / "sub" / "state.db"
    ).read_bytes()
    assert os.readlink(target / "current") == "sub/state.db"


def with_entry(base: bytes, info: tarfile.TarInfo) -> bytes:
    """GNU tar's tree with one more entry before its end blocks (as a tampered archive has)."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(base)) as source,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for entry in source:
            tar.addfile(entry, source.extractfile(entry) if entry.isreg() else None)
        tar.addfile(info)
    return out.getvalue()


def device() -> tarfile.TarInfo:
    info = tarfile.TarInfo("./sub/disk")
    info.type, info.devmajor, info.devminor = tarfile.BLKTYPE, 8, 0
    return info


@pytest.mark.parametrize(
    ("case", "entry", "problem"),
    [
        ("link out", "./escape", "symlink to '../../etc' points outside the data dir"),
        ("device", "./sub/disk", "device node"),
        ("extra entry", None, "more than the .* tampered"),
        ("missing entry", None, r"\d+, not the \d+ .*tampered"),
        ("wrong sha256", None, "sha256 does not match the manifest: corrupt"),
        ("data after its end", None, "data after the member's end"),
        ("cut", None, "ends after 3000 of"),
        ("no end blocks", None, "truncated or corrupt: truncated: the tree ends before"),
    ],
)
def test_a_bad_tree_is_refused_with_verify_s_words_and_nothing_stays_staged(
    data_dir: Path, tmp_path: Path, case: str, entry: str | None, problem: str
) -> None:
    if case == "link out":
        (data_dir / "escape").symlink_to("../../etc")
    tree, count = gnu_tar(data_dir)
    sent, told = None, {"listed": str(count)}
    if case == "device":
        tree, told["listed"] = with_entry(tree, device()), str(count + 1)
    elif case in ("extra entry", "missing entry"):
        told["listed"] = str(count - 1 if case == "extra entry" else count + 1)
    elif case == "wrong sha256":
        told["sha256"] = "0" * 64
    elif case == "data after its end":
        sent = tree + bytes(-len(tree) % BLOCK) + b"junk"
    elif case == "cut":
        sent = tree[:3000]
    elif case == "no end blocks":
        with tarfile.open(fileobj=io.BytesIO(tree)) as whole:
            last = whole.getmembers()[-1]
        tree = tree[: last.offset_data + -last.size % BLOCK + last.size]  # the end blocks go
    status, answer, target = staged(tmp_path, tree, sent, **told)
    assert status == 1 and answer is not None, answer
    assert answer.invalid, answer  # type: ignore[attr-defined]
    assert answer.entry == entry, answer  # type: ignore[attr-defined]
    assert re.search(problem, answer.error), answer  # type: ignore[attr-defined]
    assert not target.exists()


def test_corrupt_frames_are_refused_naming_zstd(tmp_path: Path) -> None:
    target = tmp_path / "staging" / "data"
    args = ("import", "tree", str(target.parent), str(target), "10240", "0" * 64, "-")
    status, _, answer = run(*args, data=b"\x28\xb5\x2f\xfd garbage")
    assert status == 1 and answer is not None and answer.invalid
    assert answer.error.startswith("corrupt: zstd:") and not target.exists()


def test_tar_failing_for_its_own_reason_is_the_node_s_failure_not_the_member_s(
    tmp_path: Path,
) -> None:
    """A tree verify accepts but tar cannot write (a file under a name that is a file) fails
    with tar's words, not as a refusal of the archive, and leaves nothing staged."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        root = tarfile.TarInfo(".")
        root.type = tarfile.DIRTYPE
        tar.addfile(root)
        for name in ("./a", "./a/b"):
            tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    status, answer, target = staged(tmp_path, out.getvalue(), listed="3")
    assert status == 1 and answer is not None, answer
    assert not answer.invalid and answer.error.startswith("tar: "), answer  # type: ignore[attr-defined]
    assert not target.exists()
