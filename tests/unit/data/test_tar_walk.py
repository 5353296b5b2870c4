"""The header-only tar walker and the tree check on it: the entries it finds are tarfile's
(pax names, GNU long names and links), in chunks of any size; and what tarfile would let
pass silently (a bad header, a tree cut short, sparse files, links carrying data) is refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from kato.config import DataLimits
from kato.data.invalid import ArchiveInvalid
from kato.data.limits import LimitExceeded
from kato.data.tree_check import TreeCheck, check_tree
from kato.remote.tar_walk import BLOCK, TarProblem, TarWalk

LONG = "./" + "/".join(["d" * 60] * 4) + "/file-with-a-long-name"
ODD = "./caf\xe9 \udcff\n-tab\t"  # not UTF-8: kept as surrogates, as tarfile does


def tar_of(entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]], fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, encoding="utf-8") as tar:
        for entry in entries:
            info, data = entry if isinstance(entry, tuple) else (entry, b"")
            tar.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


def info(
    name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = ""
) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type, entry.size, entry.linkname, entry.mtime = kind, size, link, 1_700_000_000.5
    return entry


def sample(fmt: int) -> bytes:
    data = bytes(range(256)) * 9
    return tar_of(
        [
            info(".", tarfile.DIRTYPE),
            (info("./a", size=len(data)), data),
            (info(LONG, size=3), b"abc"),
            info("./ln", tarfile.SYMTYPE, link=LONG[2:]),
            info("./hard", tarfile.LNKTYPE, link="./a"),
            info("./long-link", tarfile.SYMTYPE, link="a/" * 80 + "x"),
            (info(ODD, size=1), b"z"),
            info("./empty-dir", tarfile.DIRTYPE),
        ],
        fmt,
    )


def walked(raw: bytes, step: int) -> list[tuple[str, bytes, str, int]]:
    found: list[tuple[str, bytes, str, int]] = []
    walk = TarWalk(lambda e: found.append((e.name, e.type, e.linkname, e.size)))
    for start in range(0, len(raw), step):
        walk.feed(raw[start : start + step])
    walk.end()
    return found


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("step", [1, 511, 513, 4096, 1 << 20])
def test_on_data_gets_each_files_data_and_where_it_lies(fmt: int, step: int) -> None:
    """The data of every regular file (not its padding), right after its entry, and `offset`
    where it starts in the stream; `feed` takes the stream up to the end block."""
    raw = sample(fmt)
    data: dict[str, bytearray] = {}
    starts: dict[str, int] = {}

    def entry(e: tarfile.TarInfo) -> None:
        data[e.name], starts[e.name] = bytearray(), walk.offset

    def piece(view: memoryview) -> None:
        data[list(data)[-1]] += view

    walk = TarWalk(entry, piece)
    taken = sum(walk.feed(raw[start : start + step]) for start in range(0, len(raw), step))
    assert walk.finished and walk.between
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:", encoding="utf-8") as tar:
        for member in tar:
            body = tar.extractfile(member) if member.isreg() else None
            assert bytes(data[member.name]) == (body.read() if body else b""), member.name
            assert starts[member.name] == member.offset_data, member.name
        assert taken == tar.offset + BLOCK  # the first end block, not what follows it


def tarfiles(raw: bytes) -> list[tuple[str, bytes, str, int]]:
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r|", encoding="utf-8") as tar:
        return [(e.name, e.type, e.linkname, e.size) for e in tar]


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("step", [1, 7, 512, 4096, 1 << 20])
def test_the_entries_are_tarfiles_in_chunks_of_any_size(fmt: int, step: int) -> None:
    raw = sample(fmt)
    expected = tarfiles(raw)
    assert any(name == LONG for name, *_ in expected)  # the long name needed an extension
    assert walked(raw, step) == expected


def test_gnu_tar_posix_output_is_walked_like_tarfile(tmp_path: Path) -> None:
    import subprocess

    root = tmp_path / "t"
    (root / ("x" * 120)).mkdir(parents=True)
    (root / ("x" * 120) / ("y" * 150)).write_bytes(b"1" * 1000)
    (root / "link").symlink_to("x" * 120)
    raw = subprocess.run(
        ("tar", "--create", "--file=-", "--format=posix", "--sort=name", "-C", str(root), "."),
        check=True,
        capture_output=True,
    ).stdout
    assert len(walked(raw, 1000)) == 4
    assert walked(raw, 1000) == tarfiles(raw)


def test_a_tree_cut_short_is_refused() -> None:
    raw = sample(tarfile.PAX_FORMAT)
    end = len(raw) - raw[::-1].index(b"z"[0]) + 511 & ~511  # after the last data block
    for cut in (700, end - 1, end):
        walk = TarWalk(lambda _e: None)
        walk.feed(raw[:cut])
        with pytest.raises(TarProblem, match="truncated"):
            walk.end()


def test_a_bad_header_checksum_anywhere_is_refused() -> None:
    raw = bytearray(sample(tarfile.GNU_FORMAT))
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        later = tar.getmembers()[4].offset
    raw[later + 10] ^= 0x20  # a later header's name: tarfile would stop there silently
    assert len(tarfiles(bytes(raw))) == 4
    walk = TarWalk(lambda _e: None)
    with pytest.raises(TarProblem, match="corrupt tar header"):
        walk.feed(bytes(raw))


def test_a_malformed_pax_header_is_refused() -> None:
    raw = bytearray(sample(tarfile.PAX_FORMAT))
    at = raw.index(b" path=")
    raw[at - 2 : at] = b"x9"
    with pytest.raises(TarProblem, match="malformed pax"):
        TarWalk(lambda _e: None).feed(bytes(raw))


def test_sparse_entries_and_links_with_data_are_refused() -> None:
    sparse = info("./s", tarfile.GNUTYPE_SPARSE)
    with pytest.raises(TarProblem, match="sparse"):
        TarWalk(lambda _e: None).feed(tar_of([sparse], tarfile.GNU_FORMAT))
    link = bytearray(tar_of([info("./l", tarfile.SYMTYPE, link="a")], tarfile.GNU_FORMAT))
    tarfile_block = tarfile.TarInfo.frombuf(bytes(link[:BLOCK]), "utf-8", "strict")
    tarfile_block.size = 512
    link[:BLOCK] = tarfile_block.tobuf(tarfile.GNU_FORMAT)[:BLOCK]
    with pytest.raises(TarProblem, match="carrying data"):
        TarWalk(lambda _e: None).feed(bytes(link))


def test_a_global_header_renaming_entries_is_refused() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"path": "./elsewhere"}) as tar:  # fmt: skip
        tar.addfile(info("./a"))
    with pytest.raises(TarProblem, match="global pax header"):
        TarWalk(lambda _e: None).feed(out.getvalue())


def check(raw: bytes, **kwargs: object) -> int:
    return check_tree(io.BytesIO(raw), "data/n/r/d.tar", "A", **kwargs)  # type: ignore[arg-type]


def test_the_tree_check_counts_a_safe_tree() -> None:
    assert check(sample(tarfile.PAX_FORMAT)) == 8
    assert check(sample(tarfile.PAX_FORMAT), listed=8) == 8


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (info("./dev", tarfile.CHRTYPE), "device node"),
        (info("./fifo", tarfile.FIFOTYPE), "fifo"),
        (info("./out", tarfile.SYMTYPE, link="../../etc"), "points outside"),
        (info("./" + "../" * 3 + "etc/passwd"), "unsafe path"),
        (info("./h", tarfile.LNKTYPE, link="/etc/shadow"), "hard link"),
    ],
)
def test_an_unsafe_entry_is_refused_with_todays_message(
    entry: tarfile.TarInfo, problem: str
) -> None:
    raw = tar_of([info(".", tarfile.DIRTYPE), entry], tarfile.PAX_FORMAT)
    with pytest.raises(ArchiveInvalid, match=problem):
        check(raw)


def test_a_link_out_through_another_link_is_refused() -> None:
    raw = tar_of(
        [info(".", tarfile.DIRTYPE), info("./d", tarfile.DIRTYPE),
         info("./d/up", tarfile.SYMTYPE, link=".."), info("./x", tarfile.SYMTYPE, link="d/up/..")],
        tarfile.PAX_FORMAT,
    )  # fmt: skip
    with pytest.raises(ArchiveInvalid, match="through the tree's other symlinks"):
        check(raw)


def test_entries_beyond_the_limit_or_the_manifest_are_refused() -> None:
    raw = sample(tarfile.PAX_FORMAT)
    with pytest.raises(LimitExceeded, match="more than 7 files"):
        check(raw, within=DataLimits(max_entries=7, max_ratio=1000.0))
    with pytest.raises(LimitExceeded):
        check(raw, within=DataLimits(max_entries=10, max_ratio=1000.0), before=3)
    with pytest.raises(ArchiveInvalid, match="more than the 7 .* tampered"):
        check(raw, listed=7)
    with pytest.raises(ArchiveInvalid, match="8, not the 9 .* tampered"):
        check(raw, listed=9)


def test_a_truncated_or_tampered_tree_is_archive_invalid() -> None:
    raw = sample(tarfile.PAX_FORMAT)
    with pytest.raises(ArchiveInvalid, match="truncated or corrupt: truncated"):
        check(raw[:2048])
    tampered = bytearray(raw)
    tampered[100] ^= 1  # the first header's mode
    with pytest.raises(ArchiveInvalid, match="truncated or corrupt: corrupt tar header"):
        check(bytes(tampered))


def test_tree_check_is_fed_in_pieces() -> None:
    raw = sample(tarfile.GNU_FORMAT)
    tree = TreeCheck("m", "A")
    for start in range(0, len(raw), 333):
        tree.feed(memoryview(raw)[start : start + 333])
    assert tree.finish() == 8
