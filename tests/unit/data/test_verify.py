"""verify_archive refuses every incomplete, corrupt or unsafe archive, naming the bad member."""

from __future__ import annotations

import dataclasses
import gzip
import tarfile
import zlib
from pathlib import Path
from typing import IO

import pytest

from kato.data import archive
from kato.data.manifest import NAME, SLOT, Manifest, Member
from kato.data.verify import ArchiveInvalid, check_tree, verify_archive
from kato.errors import ExitCode
from kato.remote.tree_safety import MAX_NAME, Seen, clean_name, entry_problem
from tests.unit.data.build import (
    COMPRESSIONS,
    MTIME,
    Content,
    Entry,
    compressed,
    data_offsets,
    directory,
    hardlink,
    inner_tree,
    manifest_of,
    plain_archive,
    random_bytes,
    rich_tree,
    symlink,
    write_archive,
)

STREAM = Content(
    "node1", "postgresql", "services", "stream", random_bytes(300_000, seed=3),
    "/var/lib/kato/data/services/postgresql",
)  # fmt: skip
TREE = Content(
    "node1", "controller", "controller", "tree", rich_tree(), "/var/lib/kato/data/controller"
)
EXTRA = Content("node1", "redis", "services", "stream", b"redis dump\n" * 50)
GOOD = (STREAM, TREE)


def refused(path: Path) -> ArchiveInvalid:
    with pytest.raises(ArchiveInvalid) as caught:
        verify_archive(path)
    error = caught.value
    assert error.exit_code == ExitCode.ARCHIVE_INVALID and int(error.exit_code) == 6
    assert error.path == str(path)
    assert error.message == f"{path}: {error.member}: {error.problem}"
    assert error.hint and "cannot be trusted" in error.hint
    return error


def assert_refused(path: Path, member: str, *problem: str) -> None:
    error = refused(path)
    assert error.member == member, error.problem
    for words in problem:
        assert words in error.problem, (words, error.problem)


@pytest.fixture(params=COMPRESSIONS)
def compress(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The good archive's bytes for each compression, written once."""
    found = {}
    for compress in COMPRESSIONS:
        path = tmp_path_factory.mktemp("good") / f"good{archive.SUFFIX[compress]}"
        write_archive(path, compress, GOOD)
        found[compress] = path.read_bytes()
    return found


def test_the_good_archive_verifies(tmp_path: Path, compress: str) -> None:
    path = tmp_path / "good"
    manifest = write_archive(path, compress, GOOD)
    result = verify_archive(path)
    assert result.manifest == manifest and result.members == 2
    assert result.bytes == len(STREAM.data) + len(TREE.data)


def test_progress_names_each_member(tmp_path: Path) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.details: list[str] = []

        def step(self, message: str) -> None:
            pass

        def detail(self, message: str) -> None:
            self.details.append(message)

        def warn(self, message: str) -> None:
            pass

    path, recorder = tmp_path / "good", Recorder()
    write_archive(path, "none", GOOD)
    verify_archive(path, progress=recorder)
    assert recorder.details == [f"{c.name} ({len(c.data)} bytes)" for c in GOOD]


# -- corruption -----------------------------------------------------------------------------------


def flipped(raw: bytes, *offsets: int, bit: int = 0x10) -> bytes:
    data = bytearray(raw)
    for offset in offsets:
        data[offset] ^= bit
    return bytes(data)


def member_start(raw: bytes, compress: str, content: Content) -> int:
    """Where a member's (compressed) data starts: just after its header's raw frame."""
    header = archive.raw_frame(archive.tar_header(content.name, len(content.data), MTIME), compress)
    assert raw.count(header) == 1
    return raw.index(header) + len(header)


@pytest.mark.parametrize("content", GOOD, ids=["stream", "tree"])
@pytest.mark.parametrize("into", [0.3, 0.6])
def test_a_flipped_byte_in_a_members_data(
    tmp_path: Path, good_bytes: dict[str, bytes], compress: str, content: Content, into: float
) -> None:
    raw = good_bytes[compress]
    if compress == "none":
        offset, size = data_offsets_of(tmp_path, raw)[content.name]
        assert raw[offset : offset + size] == content.data
        at = offset + int(size * into)
    else:
        # well inside the member's compressed bytes (both members compress to > 40 KB)
        at = member_start(raw, compress, content) + int(40_000 * into)
    path = tmp_path / "bad"
    path.write_bytes(flipped(raw, at))
    error = refused(path)
    assert error.member == content.name, error.problem
    assert "corrupt" in error.problem
    if compress == "none":
        assert error.problem == "sha256 does not match the manifest: corrupt"


def data_offsets_of(tmp_path: Path, raw: bytes) -> dict[str, tuple[int, int]]:
    path = tmp_path / "copy.tar"
    path.write_bytes(raw)
    return data_offsets(path)


@pytest.mark.parametrize(
    ("compress", "content"),
    [(c, m) for m in (STREAM, TREE) for c in COMPRESSIONS],
    ids=[f"{c}-{m}" for m in ("stream", "tree") for c in COMPRESSIONS],
)
def test_a_flipped_byte_in_a_members_header(
    tmp_path: Path, good_bytes: dict[str, bytes], compress: str, content: Content
) -> None:
    raw = good_bytes[compress]
    path = tmp_path / "bad"
    # the header's name field, the last bytes of its raw frame (gzip: its CRC follows)
    header_end = member_start(raw, compress, content) - (8 if compress == "gzip" else 0)
    path.write_bytes(flipped(raw, header_end - 512 + 20))
    error = refused(path)
    # the header is not a member yet: the archive as a whole is refused (gzip: by its CRC;
    # otherwise by the header's own checksum)
    assert error.member == "archive", error.problem
    assert "truncated or corrupt" in error.problem
    if compress != "gzip":
        assert "bad checksum" in error.problem


def test_a_flipped_byte_in_the_first_gzip_header_is_not_blamed_on_the_manifest(
    tmp_path: Path, good_bytes: dict[str, bytes]
) -> None:
    raw = good_bytes["gzip"]
    path = tmp_path / "bad"
    path.write_bytes(flipped(raw, member_start(raw, "gzip", STREAM) - 8 - 512 + 20))
    assert refused(path).member != NAME


def test_a_flipped_byte_in_a_compressed_manifest(
    tmp_path: Path, good_bytes: dict[str, bytes]
) -> None:
    raw = good_bytes["gzip"]
    path = tmp_path / "bad"
    path.write_bytes(flipped(raw, raw.index(b'"cluster": "prod"') + 12))
    assert_refused(path, NAME, "corrupt")


@pytest.mark.parametrize("compress_", ["zstd", "none"])
def test_a_flipped_byte_in_the_manifests_owner_is_caught(
    tmp_path: Path, good_bytes: dict[str, bytes], compress_: str
) -> None:
    raw = good_bytes[compress_]
    path = tmp_path / "bad"
    at = raw.index(b'"owner": "105:109"') + 11
    path.write_bytes(flipped(raw, at, bit=1))  # one bit: "105:109" -> "115:109"
    assert b'"owner": "115:109"' in path.read_bytes()
    refused(path)


def cuts(raw: bytes, compress: str) -> dict[str, tuple[int, str]]:
    """Where to cut the good archive, and the member verify must then name."""
    stream, tree = member_start(raw, compress, STREAM), member_start(raw, compress, TREE)
    return {
        "in the manifest's header": (100, NAME),
        "in the manifest's body": (512 + 1000, NAME),
        "at the manifest's end": (
            len(archive.raw_frame(bytes(512 + SLOT), compress)) - 5,
            NAME,
        ),
        "in the first member": (stream + 150_000, STREAM.name),
        "near the first member's end": (tree - 2000, STREAM.name),
        "in the last member": (tree + 30_000, TREE.name),
    }


@pytest.mark.parametrize(
    "where",
    [
        "in the manifest's header",
        "in the manifest's body",
        "at the manifest's end",
        "in the first member",
        "near the first member's end",
        "in the last member",
    ],
)
def test_a_truncated_archive(
    tmp_path: Path, good_bytes: dict[str, bytes], compress: str, where: str
) -> None:
    raw = good_bytes[compress]
    offset, member = cuts(raw, compress)[where]
    path = tmp_path / "cut"
    path.write_bytes(raw[:offset])
    error = refused(path)
    assert error.member == member, error.problem
    if member == NAME:
        assert error.problem.startswith("truncated or corrupt")
    else:
        assert "truncated or corrupt" in error.problem or "ends after" in error.problem


def test_an_archive_cut_before_its_members_misses_them(
    tmp_path: Path, good_bytes: dict[str, bytes]
) -> None:
    raw = good_bytes["none"]
    path = tmp_path / "cut"
    path.write_bytes(raw[: 512 + SLOT])
    assert_refused(path, STREAM.name, "listed in the manifest but missing")


def test_a_gzip_archive_cut_early_in_a_member_names_it(
    tmp_path: Path, good_bytes: dict[str, bytes]
) -> None:
    raw = good_bytes["gzip"]
    path = tmp_path / "cut"
    path.write_bytes(raw[: member_start(raw, "gzip", STREAM) + 100])
    assert_refused(path, STREAM.name, "truncated or corrupt")


@pytest.mark.parametrize("content", GOOD, ids=["stream", "tree"])
def test_a_recompressed_gzip_archive_cut_in_a_member_names_it(
    tmp_path: Path, good_bytes: dict[str, bytes], content: Content
) -> None:
    """One gzip member for the whole tar (as gzip itself writes one): the member the
    decompressor was in when the file ended is blamed, not where that gzip member began."""
    tar = gzip.decompress(good_bytes["gzip"])
    offset, size = data_offsets_of(tmp_path, tar)[content.name]
    compressor = zlib.compressobj(wbits=31)
    cut = compressor.compress(tar[: offset + size // 2]) + compressor.flush(zlib.Z_SYNC_FLUSH)
    path = tmp_path / "cut"
    path.write_bytes(cut)
    assert_refused(path, content.name, "truncated or corrupt")


# -- the manifest and the members it lists ---------------------------------------------------


def test_a_member_listed_but_missing(tmp_path: Path, compress: str) -> None:
    path = tmp_path / "bad"
    write_archive(path, compress, GOOD, manifest_of([c.member() for c in (*GOOD, EXTRA)]))
    assert_refused(path, EXTRA.name, "listed in the manifest but missing")


def test_a_member_not_listed(tmp_path: Path, compress: str) -> None:
    path = tmp_path / "bad"
    write_archive(path, compress, (*GOOD, EXTRA), manifest_of([c.member() for c in GOOD]))
    assert_refused(path, EXTRA.name, "not listed in the manifest")


def test_a_member_twice(tmp_path: Path, compress: str) -> None:
    path = tmp_path / "bad"
    write_archive(
        path, compress, (STREAM, TREE, STREAM), manifest_of([STREAM.member(), TREE.member()])
    )
    assert_refused(path, STREAM.name, "appears twice in the archive")


def test_a_changed_sha256(tmp_path: Path, compress: str) -> None:
    path = tmp_path / "bad"
    members = [dataclasses.replace(TREE.member(), sha256="0" * 64), STREAM.member()]
    write_archive(path, compress, GOOD, manifest_of(members))
    assert_refused(path, TREE.name, "sha256 does not match the manifest")


@pytest.mark.parametrize("delta", [1, -1])
def test_a_changed_size(tmp_path: Path, compress: str, delta: int) -> None:
    path = tmp_path / "bad"
    size = len(STREAM.data)
    members = [dataclasses.replace(STREAM.member(), size=size + delta), TREE.member()]
    write_archive(path, compress, GOOD, manifest_of(members))
    assert_refused(path, STREAM.name, f"is {size} bytes, the manifest says {size + delta}")


def test_a_newer_format(tmp_path: Path, compress: str) -> None:
    path = tmp_path / "bad"
    write_archive(path, compress, GOOD, manifest_of([c.member() for c in GOOD], fmt=3))
    assert_refused(path, NAME, "format 3 is newer than this kato understands", "upgrade kato")


@dataclasses.dataclass(frozen=True)
class _Raw(Manifest):
    """A manifest whose bytes in the archive are whatever a test says."""

    body: bytes = b""

    def encode(self) -> bytes:
        return self.body


def raw_manifest(body: bytes) -> Manifest:
    return _Raw(1, "prod", None, "0.1.0", "now", (), body.ljust(SLOT))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json" + b" " * 100, "not JSON"),
        (b"\xff\xfe" + b" " * 100, "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"format": "1"}', "format: missing or not a number"),
        (b'{"format": 1, "cluster": "prod"}', "kato_version missing or not text"),
        (b"", "not JSON"),
    ],
)
def test_a_manifest_that_is_not_one(
    tmp_path: Path, compress: str, body: bytes, problem: str
) -> None:
    path = tmp_path / "bad"
    write_archive(path, compress, GOOD, raw_manifest(body))
    assert_refused(path, NAME, problem)


def test_a_manifest_larger_than_its_slot(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    plain_archive(path, "none", [(NAME, b" " * (SLOT + 1))])
    assert_refused(path, NAME, "not a regular file of a manifest's size")


def test_the_manifest_not_first(tmp_path: Path, compress: str) -> None:
    body = manifest_of([STREAM.member()]).encode()
    path = tmp_path / "bad"
    plain_archive(path, compress, [(STREAM.name, STREAM.data), (NAME, body)])
    assert_refused(path, NAME, f"must be the first member (found {STREAM.name})")


def test_an_archive_built_by_plain_tar_verifies(tmp_path: Path, compress: str) -> None:
    """The format is plain tar: nothing depends on the writer's raw frames."""
    path = tmp_path / "plain"
    body = manifest_of([c.member() for c in GOOD]).encode()
    plain_archive(path, compress, [(NAME, body), *((c.name, c.data) for c in GOOD)])
    assert verify_archive(path).members == 2


# -- the end of the archive ------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"garbage",
        b"x" * 30_000,
    ],
    ids=["7 bytes", "30000 bytes"],
)
def test_data_after_the_end_of_the_archive(
    tmp_path: Path, good_bytes: dict[str, bytes], compress: str, garbage: bytes
) -> None:
    path = tmp_path / "bad"
    path.write_bytes(good_bytes[compress] + compressed(garbage, compress))
    assert_refused(path, "archive", "data after the end of the archive")


def test_zeros_after_the_end_are_allowed(
    tmp_path: Path, good_bytes: dict[str, bytes], compress: str
) -> None:
    path = tmp_path / "padded"
    path.write_bytes(good_bytes[compress] + compressed(bytes(30_000), compress))
    assert verify_archive(path).members == 2


def test_raw_junk_after_a_zstd_archive(tmp_path: Path, good_bytes: dict[str, bytes]) -> None:
    path = tmp_path / "bad"
    path.write_bytes(good_bytes["zstd"] + b"rawjunk" * 10)
    assert_refused(path, "archive", "truncated or corrupt", "zstd")


def test_raw_junk_after_a_gzip_archive(tmp_path: Path, good_bytes: dict[str, bytes]) -> None:
    path = tmp_path / "bad"
    path.write_bytes(good_bytes["gzip"] + b"rawjunk" * 10)
    assert_refused(path, "archive")


# -- not archives at all ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty file"),
        (b"hello world\n" * 100, "invalid header"),
        (b"\x1f\x8b" + b"junk" * 100, "truncated or corrupt"),
        (b"\x28\xb5\x2f\xfd" + b"junk" * 100, "truncated or corrupt"),
        (random_bytes(5000, seed=9), "truncated or corrupt"),
    ],
    ids=["empty", "text", "gzip magic", "zstd magic", "random"],
)
def test_a_file_that_is_not_an_archive(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "not-an-archive.tar"
    path.write_bytes(content)
    assert_refused(path, NAME, problem)  # the manifest is what verify reads first


def test_a_file_of_zeros_has_no_manifest(tmp_path: Path) -> None:
    path = tmp_path / "zeros.tar"
    path.write_bytes(bytes(10240))
    assert_refused(path, NAME, "must be the first member (found nothing)")


def test_no_such_file(tmp_path: Path) -> None:
    assert_refused(tmp_path / "nowhere.tar", "archive", "no such file")
    assert_refused(tmp_path, "archive", "no such file")


# -- what a tree member holds ----------------------------------------------------------------

ROOT = directory(".")
DEVICE = {"devmajor": 8, "devminor": 1}


@pytest.mark.parametrize(
    ("entries", "bad", "problem"),
    [
        ([ROOT, Entry("../escape", data=b"x")], "../escape", "unsafe path"),
        ([ROOT, Entry("/etc/passwd", data=b"x")], "/etc/passwd", "unsafe path"),
        ([ROOT, directory("a"), Entry("a/../../x", data=b"x")], "a/../../x", "unsafe path"),
        ([ROOT, Entry("x" * (MAX_NAME + 1))], "x" * (MAX_NAME + 1), "unsafe path"),
        ([ROOT, symlink("etc", "/etc")], "etc", "symlink to '/etc' points outside"),
        (
            [ROOT, directory("a"), symlink("a/up", "../../x")],
            "a/up",
            "symlink to '../../x' points outside",
        ),
        ([ROOT, symlink("dot", "..")], "dot", "points outside"),
        (
            [ROOT, hardlink("early", "late"), Entry("late", data=b"x")],
            "early",
            "hard link to 'late', which is not earlier",
        ),
        ([ROOT, hardlink("out", "../x")], "out", "not earlier in the data dir"),
        ([ROOT, hardlink("abs", "/etc/shadow")], "abs", "not earlier in the data dir"),
        ([ROOT, Entry("tty", tarfile.CHRTYPE, **DEVICE)], "tty", "device node"),  # type: ignore[arg-type]
        ([ROOT, Entry("sda", tarfile.BLKTYPE, **DEVICE)], "sda", "device node"),  # type: ignore[arg-type]
        ([ROOT, Entry("pipe", tarfile.FIFOTYPE)], "pipe", "fifo (not data)"),
        ([ROOT, Entry("a", data=b"1"), Entry("./a", data=b"2")], "./a", "duplicate name"),
        ([ROOT, directory("d"), directory("./d/")], "./d", "duplicate name"),
        ([ROOT, directory("./")], ".", "duplicate name"),
        ([Entry(".", data=b"not a dir")], ".", "the data dir itself must be a directory"),
    ],
    ids=[
        "dotdot",
        "absolute",
        "dotdot inside",
        "too long",
        "symlink absolute",
        "symlink up",
        "symlink to parent",
        "hard link forward",
        "hard link out",
        "hard link absolute",
        "char device",
        "block device",
        "fifo",
        "duplicate file",
        "duplicate dir",
        "root twice",
        "root not a dir",
    ],
)
def test_an_unsafe_tree(
    tmp_path: Path, compress: str, entries: list[Entry], bad: str, problem: str
) -> None:
    tree = Content("node1", "controller", "controller", "tree", inner_tree(entries))
    path = tmp_path / "bad"
    write_archive(path, compress, (STREAM, tree))
    assert_refused(path, f"{tree.name}: {bad}", problem)


def test_a_tree_member_that_is_not_a_tar(tmp_path: Path, compress: str) -> None:
    tree = Content("node1", "controller", "controller", "tree", random_bytes(2000, seed=4))
    path = tmp_path / "bad"
    write_archive(path, compress, (tree,))
    assert_refused(path, tree.name, "truncated or corrupt")


def test_a_stream_member_is_not_read_as_a_tree(tmp_path: Path) -> None:
    dump = Content("node1", "redis", "services", "stream", inner_tree([Entry("/etc/passwd")]))
    path = tmp_path / "good"
    write_archive(path, "none", (dump,))
    assert verify_archive(path).entries == 0


def test_the_tree_check_counts_entries() -> None:
    import io

    assert check_tree(io.BytesIO(rich_tree()), "m", "p") == 12
    with pytest.raises(ArchiveInvalid) as caught:
        check_tree(io.BytesIO(inner_tree([ROOT, Entry("pipe", tarfile.FIFOTYPE)])), "m", "p")
    assert (caught.value.path, caught.value.member) == ("p", "m: pipe")


# -- entry_problem and clean_name, one entry at a time ------------------------------------


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        (".", ""),
        ("./", ""),
        ("a", "a"),
        ("./a/", "a"),
        ("a//b", "a/b"),
        ("a/./b", "a/b"),
        ("-rf", "-rf"),
        ("file with spaces", "file with spaces"),
        ("ünï/文件", "ünï/文件"),
        ("..a/b..", "..a/b.."),
        ("x" * MAX_NAME, "x" * MAX_NAME),
        ("", None),
        ("/", None),
        ("/a", None),
        ("..", None),
        ("a/..", None),
        ("a/../b", None),
        ("./../a", None),
        ("a\0b", None),
        ("x" * (MAX_NAME + 1), None),
    ],
)
def test_clean_name(name: str, clean: str | None) -> None:
    assert clean_name(name) == clean


def info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type, entry.linkname = kind, link
    return entry


@pytest.mark.parametrize(
    ("name", "target", "outside"),
    [
        ("link", "file", False),
        ("link", "./file", False),
        ("link", ".", False),
        ("a/link", "..", False),
        ("a/b/link", "../../c", False),
        ("a/b/link", "../x/../../c", False),
        ("link", "..", True),
        ("link", "../data", True),
        ("a/link", "../..", True),
        ("a/b/link", "../../../c", True),
        ("a/link", "b/../../../c", True),
        ("link", "/", True),
        ("link", "/var/lib/kato/data/controller/file", True),
    ],
)
def test_symlink_targets(name: str, target: str, outside: bool) -> None:
    problem = entry_problem(info(name, tarfile.SYMTYPE, target), Seen())
    if outside:
        assert problem == f"symlink to {target!r} points outside the data dir"
    else:
        assert problem is None


def test_entries_in_order_share_one_set_of_names() -> None:
    names = Seen()
    assert entry_problem(info(".", tarfile.DIRTYPE), names) is None
    assert entry_problem(info("a"), names) is None
    assert entry_problem(info("b", tarfile.LNKTYPE, "a"), names) is None
    assert entry_problem(info("c", tarfile.LNKTYPE, "./a"), names) is None
    assert entry_problem(info("d", tarfile.LNKTYPE, "e"), names) is not None
    assert entry_problem(info("a/"), names) == "duplicate name"
    assert len(names.names) == 4  # ., a, b, c: names are kept as fixed-size digests
    assert all(len(key) == 16 for key in names.names)


def test_an_unsupported_entry_type() -> None:
    assert entry_problem(info("x", b"9"), Seen()) == "unsupported entry type"


def test_a_hard_link_to_itself() -> None:
    names = Seen()
    assert entry_problem(info(".", tarfile.DIRTYPE), names) is None
    assert entry_problem(info("x", tarfile.LNKTYPE, "x"), names) is not None


def test_a_symlink_out_through_another_symlink(tmp_path: Path) -> None:
    tree = Content(
        "node1", "controller", "controller", "tree",
        inner_tree([ROOT, symlink("d", "."), symlink("e", "d/..")]),
    )  # fmt: skip
    path = tmp_path / "bad"
    write_archive(path, "none", (tree,))
    assert_refused(path, f"{tree.name}: e", "points outside")


def test_visit_sees_only_stream_members(tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []

    def visit(member: Member, stream: IO[bytes]) -> None:
        seen.append((member.name, len(stream.read(100))))

    path = tmp_path / "good"
    write_archive(path, "none", GOOD)
    verify_archive(path, visit=visit)  # reads only part: verify still hashes the rest
    assert seen == [(STREAM.name, 100)]


class FailingDisk:
    """A file whose reads fail with EIO after `good` bytes, as a dying disk's do."""

    def __init__(self, path: str, good: int) -> None:
        self.file, self.good = open(path, "rb", buffering=0), good  # noqa: SIM115

    def read(self, size: int = -1) -> bytes:
        if self.file.tell() >= self.good:
            raise OSError(5, "Input/output error")
        return self.file.read(min(size, self.good - self.file.tell()))

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.file, name)

    def __enter__(self) -> FailingDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def test_an_unreadable_or_failing_archive_file_is_refused_not_a_crash(
    tmp_path: Path, compress: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`backups --verify` and `--keep` verify every archive in a directory: one that cannot be
    read (permissions, a failing disk) must be reported as not verified, not end the run."""
    import kato.data.verify as verify_module

    path = tmp_path / "good"
    write_archive(path, compress, GOOD)
    size = path.stat().st_size

    def denied(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(verify_module, "open", denied, raising=False)
    assert_refused(path, "archive", "cannot be read: Permission denied")
    monkeypatch.setattr(verify_module, "open", lambda p, *a, **k: FailingDisk(p, size // 2),
                        raising=False)  # fmt: skip
    assert "reading failed: Input/output error" in refused(path).problem
