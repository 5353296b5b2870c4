"""An archive cannot exhaust a node: its expansion and its entries are limited (raised only on
purpose), and each target's free space and inodes are checked, all before a byte is staged."""

from __future__ import annotations

import hashlib
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kato.data import archive as archive_
from kato.data.manifest import Manifest, Member
from tests.integration.conftest import Cluster, kato
from tests.integration.test_data import UNCHANGED, on, shell

pytestmark = pytest.mark.integration
DROPLETS = "data/node1/filesystem/droplets.tar"
BLOCK = 512
ZEROS = bytes(1 << 20)


class Hashing:
    """A sink that hashes and counts what passes to the archive."""

    def __init__(self, sink: archive_.Sink) -> None:
        self.sink, self.sha, self.size = sink, hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self.sha.update(data)
        self.size += len(data)
        self.sink.write(data)


def header(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.mtime = size, kind, 0o644, 1_700_000_000
    if kind == tarfile.DIRTYPE:
        info.mode = 0o750
    return info.tobuf(tarfile.GNU_FORMAT)


def empty_files(count: int) -> Iterator[bytes]:
    """The data dir's tar: `.` and `count` empty files, headers patched in place (fast)."""
    yield header(".", kind=tarfile.DIRTYPE)
    template = bytearray(header("f0000000"))
    base = sum(template) - sum(template[148:156]) + 8 * 32 - sum(b"f0000000")
    batch = bytearray()
    for index in range(count):
        name = b"f%07d" % index
        template[0:8] = name
        template[148:156] = b"%06o\0 " % (base + sum(name))
        batch += template
        if len(batch) >= 1 << 20:
            yield bytes(batch)
            batch.clear()
    yield bytes(batch) + bytes(2 * BLOCK)


def zeros(size: int) -> Iterator[bytes]:
    yield header(".", kind=tarfile.DIRTYPE) + header("zeros.bin", size)
    left = size
    while left:
        chunk = ZEROS[: min(left, len(ZEROS))]
        left -= len(chunk)
        yield chunk
    yield bytes(-size % BLOCK) + bytes(2 * BLOCK)


def build(cluster: Cluster, path: Path, tree: Iterator[bytes]) -> Path:
    mode, owner = shell(cluster, "node1", "stat -c '0%a %u:%g' /var/lib/kato/data/droplets").split()
    with path.open("wb") as file:
        writer = archive_.ArchiveWriter(file, "zstd", 1_700_000_000)
        hashing: list[Hashing] = []

        def fill(sink: archive_.Sink) -> None:
            hashing.append(Hashing(sink))
            for chunk in tree:
                hashing[0].write(chunk)

        writer.add(DROPLETS, fill)
        member = Member(
            DROPLETS, "node1", "filesystem", "droplets", "/var/lib/kato/data/droplets", "tree",
            hashing[0].size, mode, owner, hashing[0].sha.hexdigest(),
        )  # fmt: skip
        writer.finish(
            # format 1: no entries in the manifest, so they are counted as they pass
            Manifest(1, cluster.name, "1.0.0", "test", "2026-01-01T00:00:00Z", (member,))
        )
    return path


@pytest.fixture(scope="module")
def million(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("million")
    return build(cluster, directory / "million.tar.zst", empty_files(1_000_000))


@pytest.fixture(scope="module")
def bomb(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bomb")
    return build(cluster, directory / "bomb.tar.zst", zeros(3 * 2**30))


def snapshot(cluster: Cluster) -> str:
    listing = shell(cluster, "node1", "ls -a /var/lib/kato/data; df -i /var/lib/kato/data")
    return shell(cluster, "node1", UNCHANGED) + listing.split("\n", 1)[0]


def refused_quickly(cluster: Cluster, *args: str) -> str:
    before = snapshot(cluster)
    started = time.monotonic()
    done = on(cluster, *args, check=False)
    seconds = time.monotonic() - started
    assert done.returncode == 7, done.stderr
    assert seconds < 60, f"refused only after {seconds:.0f}s"
    assert "nothing was written" in done.stderr or "nothing was changed" in done.stderr
    assert snapshot(cluster) == before
    assert ".kato-import-" not in shell(cluster, "node1", "ls -a /var/lib/kato/data")
    return done.stderr


def test_gibs_of_zeros_in_a_small_archive_are_refused_from_the_manifest(
    cluster: Cluster, bomb: Path
) -> None:
    assert bomb.stat().st_size < 2**20
    started = time.monotonic()
    verified = kato("data", "verify", str(bomb), check=False)
    assert verified.returncode == 7, verified.stderr
    assert time.monotonic() - started < 10  # from the manifest: no data decompressed
    assert "3072 MiB of data in" in verified.stderr and "--max-ratio" in verified.stderr
    error = refused_quickly(cluster, "data", "import", str(bomb))
    assert "the limit is 100" in error and "data.max_ratio" in error


def test_a_million_empty_files_are_refused_before_anything_is_staged(
    cluster: Cluster, million: Path
) -> None:
    error = refused_quickly(cluster, "data", "import", str(million), "--max-ratio", "100000")
    assert "more than 500000 files, dirs and links" in error and "--max-entries" in error
    verified = kato("data", "verify", str(million), "--max-ratio", "100000", check=False)
    assert verified.returncode == 7 and "--max-entries" in verified.stderr


def test_limits_are_raised_only_on_purpose(cluster: Cluster, tmp_path: Path) -> None:
    small = build(cluster, tmp_path / "zeros.tar.zst", zeros(100 * 2**20))
    assert kato("data", "verify", str(small), check=False).returncode == 7
    kato("data", "verify", str(small), "--max-ratio", "100000")
    text = (cluster.home / "cluster.yaml").read_text()
    raised = tmp_path / "cluster.yaml"
    raised.write_text(text + "data:\n  max_ratio: 100000\n  max_entries: 1\n")
    done = kato("--cluster", str(raised), "data", "import", str(small), "--dry-run", check=False)
    assert done.returncode == 7 and "more than 1 files" in done.stderr  # the file's limits
    done = kato(
        "--cluster", str(raised), "data", "import", str(small), "--dry-run",
        "--max-entries", "10",
    )  # fmt: skip
    assert "plan: import" in done.stdout


@pytest.fixture
def tiny_droplets(cluster: Cluster) -> Iterator[None]:
    """node1's release defines the droplets dir on a small ext4 disk (about 4000 inodes)."""
    kato("sandbox", "disk", "node1", "--fs", "ext4", "--size", "16M", "--at", "/mnt/tiny",
         "--name", cluster.name)  # fmt: skip
    role = "/var/lib/kato/releases/current/filesystem/role.yaml"
    moved = f"sed -i 's|/var/lib/kato/data/droplets|/mnt/tiny/droplets|' {role}"
    shell(cluster, "node1", f"cp -p {role} {role}.kato-test && {moved}")
    yield
    shell(cluster, "node1", f"mv {role}.kato-test {role}")
    kato("sandbox", "disk", "node1", "--at", "/mnt/tiny", "--remove", "--name", cluster.name)


def test_free_inodes_are_checked_with_a_reserve(
    cluster: Cluster, tiny_droplets: None, tmp_path: Path
) -> None:
    archive = build(cluster, tmp_path / "files.tar.zst", empty_files(5000))
    before = shell(cluster, "node1", "df -i /mnt/tiny | tail -1; ls -a /mnt/tiny")
    done = on(cluster, "data", "import", str(archive), "--role", "filesystem", check=False)
    assert done.returncode == 7, done.stderr
    assert "node1: /mnt/tiny has" in done.stderr and "free inodes" in done.stderr
    assert "creates 5002 files, dirs and links" in done.stderr
    assert shell(cluster, "node1", "df -i /mnt/tiny | tail -1; ls -a /mnt/tiny") == before


def test_an_export_of_too_many_entries_is_refused_while_it_streams(
    cluster: Cluster, tmp_path: Path
) -> None:
    many = "/var/lib/kato/data/droplets/many"
    shell(cluster, "node1", f"mkdir {many} && cd {many} && seq 1 3000 | xargs touch")
    try:
        done = on(cluster, "data", "export", str(tmp_path), "--role", "filesystem",
                  "--max-entries", "1000", check=False)  # fmt: skip
        assert done.returncode == 7, done.stderr
        assert "node1 filesystem droplets: more than 1000 files, dirs and links" in done.stderr
        assert "--max-entries N" in done.stderr and "nothing was published" in done.stderr
        assert list(tmp_path.iterdir()) == []  # no archive, no partial or spool file
        on(cluster, "data", "export", str(tmp_path), "--role", "filesystem",
           "--max-entries", "4000")  # fmt: skip
        (archive,) = tmp_path.iterdir()
        assert archive.name.endswith(".tar.zst")
    finally:
        shell(cluster, "node1", f"rm -rf {many}")


def test_an_export_the_default_limits_would_refuse_says_so(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A sparse file makes an honest archive declare thousands of times its size: the export
    is complete and verified, but verify and import refuse it by default, so the export says
    which --max-ratio they will need (and that ratio then lets them through)."""
    sparse = "/var/lib/kato/data/droplets/sparse-limits"
    shell(cluster, "node1", f"mkdir -p /var/lib/kato/data/droplets && truncate -s 1G {sparse}")
    try:
        done = on(cluster, "data", "export", str(tmp_path), "--only", "filesystem")
        (archive,) = tmp_path.iterdir()
        said = " ".join(done.stderr.split())
        assert "complete and verified, but `kato data verify` and `kato data import`" in said
        ratio = said.split("unless given --max-ratio ")[1].split()[0]
        assert on(cluster, "data", "verify", str(archive), check=False).returncode == 7
        assert on(cluster, "data", "verify", str(archive), "--max-ratio", ratio).returncode == 0
    finally:
        shell(cluster, "node1", f"rm -f {sparse}")
