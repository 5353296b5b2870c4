"""verify_archive on archives made by the real tools, not kato's writer: the data dir tarred by
GNU tar with export's flags, the outer tar by GNU tar, compressed by the zstd command into
several frames (cut at odd places, so frames end inside headers and data). A good one verifies;
each kind of bad one is refused, naming the member, by libzstd in this process and by the
`zstd -d` fallback alike."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from kato.data import manifest as manifest_
from kato.data import unzstd
from kato.data.manifest import Member
from kato.data.verify import ArchiveInvalid, verify_archive
from tests.unit.data.build import Content, manifest_of, random_bytes

TREE_FLAGS = (
    "--format=posix", "--numeric-owner", "--sort=name",
    "--pax-option=delete=atime,delete=ctime",
)  # fmt: skip
FRAME_CUTS = (700, 262_000, 263_700, 1_500_001)  # in the tar stream: one zstd frame each part


@pytest.fixture(params=["libzstd", "zstd command"])
def decompressor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "zstd command":
        monkeypatch.setattr(unzstd, "available", lambda: False)
    return str(request.param)


def data_dir(root: Path, *, escaping: bool = False) -> Path:
    """A data dir with files (one large enough for several decompressed pieces), a subdir and
    links; `escaping`: one symlink points out of it."""
    top = root / "files"
    (top / "sub").mkdir(parents=True)
    (top / "big.bin").write_bytes(random_bytes(3 << 20, seed=5) + b"row\n" * (1 << 20))
    (top / "sub" / "notes.txt").write_text("notes\n" * 1000)
    os.symlink("sub/notes.txt", top / "inside")
    if escaping:
        os.symlink("../../etc/passwd", top / "sub" / "out")
    return top


def gnu_tree(top: Path) -> bytes:
    return subprocess.run(
        ("tar", *TREE_FLAGS, "-cf", "-", "--directory", str(top), "."),
        capture_output=True, check=True,
    ).stdout  # fmt: skip


def build(
    work: Path,
    contents: Sequence[Content],
    members: Sequence[Member] | None = None,
    extra: Sequence[tuple[str, bytes]] = (),
) -> Path:
    """The outer tar by GNU tar (the manifest first), zstd-compressed in several frames."""
    stage = work / "stage"
    listed = manifest_of(members if members is not None else [c.member() for c in contents])
    files = [(manifest_.NAME, listed.encode())]
    files += [(c.name, c.data) for c in contents] + list(extra)
    for name, data in files:
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        (stage / name).write_bytes(data)
    tar = subprocess.run(
        ("tar", "--format=gnu", "--owner=0", "--group=0", "-cf", "-", "-C", str(stage),
         *(name for name, _ in files)),
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    bounds = [0, *(cut for cut in FRAME_CUTS if cut < len(tar)), len(tar)]
    frames = b"".join(
        subprocess.run(
            ("zstd", "-1", "-q", "-c"), input=tar[a:b], capture_output=True, check=True
        ).stdout  # fmt: skip
        for a, b in zip(bounds, bounds[1:], strict=False)
    )
    path = work / "gnu.tar.zst"
    path.write_bytes(frames)
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Content:
    top = data_dir(tmp_path_factory.mktemp("tree"))
    return Content("node1", "filesystem", "files", "tree", gnu_tree(top), str(top))


DUMP = Content("node1", "postgresql", "services", "stream", random_bytes(400_000, seed=8))


def refused(path: Path, member: str, *words: str) -> ArchiveInvalid:
    with pytest.raises(ArchiveInvalid) as caught:
        verify_archive(path)
    assert caught.value.member == member, caught.value.problem
    for word in words:
        assert word in caught.value.problem, (word, caught.value.problem)
    return caught.value


def test_the_good_archive_verifies(tmp_path: Path, tree: Content, decompressor: str) -> None:
    result = verify_archive(build(tmp_path, [DUMP, tree]))
    assert (result.members, result.bytes) == (2, len(DUMP.data) + len(tree.data))
    assert result.tree_entries == {tree.name: 5} == {tree.name: tree.entries()}


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.999])
def test_a_truncated_archive(tmp_path: Path, tree: Content, decompressor: str, keep: float) -> None:
    path = build(tmp_path, [DUMP, tree])
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ArchiveInvalid) as caught:
        verify_archive(path)
    assert "truncated or corrupt" in caught.value.problem


def test_a_flipped_byte_in_a_frame(tmp_path: Path, tree: Content, decompressor: str) -> None:
    path = build(tmp_path, [DUMP, tree])
    raw = bytearray(path.read_bytes())
    raw[len(raw) * 2 // 3] ^= 0x10  # inside the frames holding the tree's big file
    path.write_bytes(raw)
    refused(path, tree.name, "truncated or corrupt", "zstd")


def test_a_member_sha256_mismatch(tmp_path: Path, tree: Content, decompressor: str) -> None:
    wrong = dataclasses.replace(tree.member(), sha256="0" * 64)
    path = build(tmp_path, [DUMP, tree], [DUMP.member(), wrong])
    refused(path, tree.name, "sha256 does not match the manifest")


def test_a_member_changed_after_the_manifest(tmp_path: Path, tree: Content) -> None:
    changed = dataclasses.replace(tree, data=tree.data[:1000] + b"X" + tree.data[1001:])
    path = build(tmp_path, [DUMP, changed], [DUMP.member(), tree.member()])
    refused(path, tree.name, "sha256 does not match the manifest")


def test_an_extra_member(tmp_path: Path, tree: Content, decompressor: str) -> None:
    extra = "data/node1/redis/services.dump"
    path = build(tmp_path, [DUMP, tree], extra=[(extra, b"not listed\n")])
    refused(path, extra, "not listed in the manifest")


def test_an_unsafe_tree(tmp_path: Path, decompressor: str) -> None:
    top = data_dir(tmp_path / "unsafe", escaping=True)
    unsafe = Content("node1", "filesystem", "files", "tree", gnu_tree(top), str(top))
    path = build(tmp_path, [DUMP, unsafe])
    refused(path, f"{unsafe.name}: ./sub/out", "points outside")


def test_garbage_after_the_end(tmp_path: Path, tree: Content, decompressor: str) -> None:
    path = build(tmp_path, [DUMP, tree])
    junk = subprocess.run(("zstd", "-q", "-c"), input=b"\0" * 5000 + b"junk", capture_output=True,
                          check=True).stdout  # fmt: skip
    path.write_bytes(path.read_bytes() + junk)
    refused(path, "archive", "data after the end of the archive")
