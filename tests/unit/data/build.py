"""Builders shared by the data tests: inner trees, members, manifests and whole archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kato.data.archive import ArchiveWriter, Sink
from kato.data.manifest import FORMAT, Manifest, Member, member_name

MTIME = 1_700_000_000
CREATED = "2023-11-14T22:13:20+00:00"
COMPRESSIONS = ("zstd", "gzip", "none")


def random_bytes(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


@dataclass(frozen=True)
class Entry:
    """One entry of an inner (data dir) tar."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    devmajor: int = 0
    devminor: int = 0


def directory(name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(name, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, tarfile.SYMTYPE, linkname=target, mode=0o777)


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, tarfile.LNKTYPE, linkname=target)


def inner_tree(entries: Sequence[Entry]) -> bytes:
    """A data dir's tar (GNU format, as GNU tar on a node writes it)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type, info.linkname, info.mode = entry.type, entry.linkname, entry.mode
            info.uid, info.gid, info.mtime = entry.uid, entry.gid, MTIME
            info.devmajor, info.devminor = entry.devmajor, entry.devminor
            info.size = len(entry.data) if entry.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(entry.data) if info.size else None)
    return buffer.getvalue()


# A data dir with what real ones hold: awkward names, a subdir, links inside, modes, owners.
RICH_ENTRIES = (
    directory(".", mode=0o700, uid=105, gid=109),
    Entry("file with spaces.txt", data=b"spaces\n" * 100, mode=0o600, uid=105, gid=109),
    Entry("quotes 'single' \"double\"", data=b"quotes", mode=0o640, uid=0, gid=0),
    Entry("ünïcødé-文件.bin", data=random_bytes(3000, seed=7), mode=0o444, uid=1000, gid=1000),
    Entry("-leading-dash", data=b"--help\n", mode=0o755, uid=105, gid=109),
    Entry("empty", data=b"", mode=0o600, uid=105, gid=109),
    directory("sub", mode=0o750, uid=105, gid=109),
    directory("sub/deeper", mode=0o700, uid=105, gid=109),
    Entry("sub/deeper/state.db", data=random_bytes(70_000, seed=8), mode=0o600, uid=105, gid=109),
    symlink("sub/link-up", "../file with spaces.txt"),
    symlink("sub/link-here", "deeper/state.db"),
    hardlink("hard copy", "sub/deeper/state.db"),
)


def rich_tree() -> bytes:
    return inner_tree(RICH_ENTRIES)


@dataclass(frozen=True)
class Content:
    """What one member of an archive holds, and where it came from."""

    node: str
    role: str
    data_dir: str
    kind: str
    data: bytes
    path: str = "/var/lib/kato/data/x"

    @property
    def name(self) -> str:
        return member_name(self.node, self.role, self.data_dir, self.kind)

    def member(self) -> Member:
        return Member(
            self.name,
            self.node,
            self.role,
            self.data_dir,
            self.path,
            self.kind,
            len(self.data),
            "0700",
            "105:109",
            hashlib.sha256(self.data).hexdigest(),
            self.entries(),
        )

    def entries(self) -> int:
        """What a format-2 manifest lists: the tree's files, dirs and links (0 for a dump)."""
        if self.kind != "tree":
            return 0
        try:
            with tarfile.open(fileobj=io.BytesIO(self.data), mode="r:") as tar:
                return len(tar.getmembers())
        except tarfile.TarError:
            return 0  # not a tar at all: verify refuses it for that


def manifest_of(members: Sequence[Member], cluster: str = "prod", fmt: int = FORMAT) -> Manifest:
    return Manifest(fmt, cluster, "1.0.0", "0.1.0", CREATED, tuple(members))


def write_archive(
    path: Path,
    compress: str,
    contents: Sequence[Content],
    manifest: Manifest | None = None,
    *,
    names: Sequence[str] | None = None,
) -> Manifest:
    """An archive as export writes it; `manifest` and `names` (the members' names in the
    archive) default to the ones matching `contents`."""
    manifest = manifest or manifest_of([c.member() for c in contents])
    names = names if names is not None else [c.name for c in contents]
    with path.open("wb") as file:
        writer = ArchiveWriter(file, compress, MTIME)
        for name, content in zip(names, contents, strict=True):

            def fill(sink: Sink, data: bytes = content.data) -> None:
                for start in range(0, len(data), 1 << 20):
                    sink.write(data[start : start + (1 << 20)])

            assert writer.add(name, fill) == len(content.data)
        writer.finish(manifest)
    return manifest


def compressed(data: bytes, compress: str) -> bytes:
    """`data` as one frame of an ordinary compressor's output."""
    if compress == "gzip":
        return gzip.compress(data, mtime=0)
    if compress == "zstd":
        return subprocess.run(
            ("zstd", "-q", "-c"), input=data, capture_output=True, check=True
        ).stdout
    return data


def plain_archive(path: Path, compress: str, members: Sequence[tuple[str, bytes]]) -> None:
    """An archive built by tarfile, not by the writer: any members in any order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), MTIME, 0o600
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(compressed(buffer.getvalue(), compress))


def data_offsets(path: Path) -> dict[str, tuple[int, int]]:
    """(offset, size) of each member's data in an uncompressed archive file."""
    with tarfile.open(path, mode="r:") as tar:
        return {info.name: (info.offset_data, info.size) for info in tar.getmembers()}
