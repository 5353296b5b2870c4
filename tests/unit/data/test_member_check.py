"""Import's check of one member as its compressed bytes pass (kato/data/member_check.py):
a good member passes; a wrong sha256, a cut, data after its end, a tree with more or fewer
entries than listed, or an unsafe tree is refused, each with its own reason."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile

import pytest

from kato.data.manifest import Member
from kato.data.member_check import MemberCheck
from kato.data.verify import ArchiveInvalid


def a_tree(*extra: tarfile.TarInfo) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        root = tarfile.TarInfo(".")
        root.type = tarfile.DIRTYPE
        tar.addfile(root)
        data = b"x" * 5000
        entry = tarfile.TarInfo("./file")
        entry.size = len(data)
        tar.addfile(entry, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return out.getvalue()


def member(content: bytes, kind: str = "tree", entries: int = 2, **changes: object) -> Member:
    fields: dict[str, object] = dict(
        name="data/node1/filesystem/droplets.tar", node="node1", role="filesystem",
        data_dir="droplets", path="/d", type=kind, size=len(content), mode="0750",
        owner="0:0", sha256=hashlib.sha256(content).hexdigest(), entries=entries,
    )  # fmt: skip
    fields.update(changes)
    return Member(**fields)  # type: ignore[arg-type]


def checked(listed: Member, sent: bytes) -> None:
    """Feed `sent` (the member's bytes as the archive holds them) compressed, in pieces."""
    packed = subprocess.run(("zstd", "-q", "-c"), input=sent, capture_output=True, check=True)
    check = MemberCheck(listed, "A")
    for start in range(0, len(packed.stdout), 1000):
        check.feed(packed.stdout[start : start + 1000])
    check.finish()


def padded(content: bytes) -> bytes:
    return content + bytes(-len(content) % 512)


def test_a_good_tree_and_a_good_dump_pass() -> None:
    tree = a_tree()
    checked(member(tree), padded(tree) + bytes(1024))
    dump = b"SELECT 1;\n" * 999
    checked(member(dump, "stream", 0, name="data/node1/postgresql/services.dump"), padded(dump))


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("sha256", "sha256 does not match"),
        ("cut", "ends after"),
        ("after", "data after the member's end"),
        ("more", "more than the 1 .*tampered"),
        ("fewer", "2, not the 3 .*tampered"),
        ("device", "device node"),
    ],
)
def test_a_bad_member_is_refused_with_its_reason(case: str, problem: str) -> None:
    tree = a_tree()
    listed, sent = member(tree), padded(tree)
    if case == "sha256":
        listed = member(tree, sha256="0" * 64)
    elif case == "cut":
        sent = tree[:3000]
    elif case == "after":
        sent = padded(tree) + b"junk"
    elif case in ("more", "fewer"):
        listed = member(tree, entries=1 if case == "more" else 3)
    else:
        device = tarfile.TarInfo("./dev")
        device.type = tarfile.CHRTYPE
        tree = a_tree(device)
        listed, sent = member(tree, entries=3), padded(tree)
    with pytest.raises(ArchiveInvalid, match=problem):
        checked(listed, sent)
