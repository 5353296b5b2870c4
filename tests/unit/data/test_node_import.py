"""kato/data/node_import.py: members staged by the real node program (run here on temporary
dirs) from their compressed bytes in the archive; a member that does not match its manifest
entry is refused and leaves nothing staged."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from kato.data import node_import, stream
from kato.data.placement import Placement
from kato.data.selection import DataDir
from kato.data.verify import ArchiveInvalid, read_manifest, verify_archive
from kato.errors import KatoError
from kato.progress import SilentProgress
from kato.role_export import ExportSpec
from kato.transport.base import CommandResult
from tests.unit.data.build import Content, random_bytes, rich_tree, write_archive
from tests.unit.data.local_agent import AgentThere, Concurrency, here

CONTENTS = (
    Content("node1", "postgresql", "services", "stream", b"SELECT 1;\n" * 5000),
    Content("node1", "filesystem", "droplets", "tree", rich_tree()),
    Content("node2", "redis", "services", "stream", random_bytes(300_000, seed=3)),
)


class LocalNode(AgentThere):
    def __init__(self, node: str, concurrency: Concurrency | None = None) -> None:
        self.node, self.concurrency = node, concurrency

    def stream_in(self, argv: Sequence[str], source: BinaryIO, *,
                  idle_timeout: float | None = None) -> CommandResult:  # fmt: skip
        with self.concurrency or contextlib.nullcontext():
            return self._stream_in(argv, source)

    def _stream_in(self, argv: Sequence[str], source: BinaryIO) -> CommandResult:
        proc = subprocess.Popen(here(argv), stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        assert proc.stdin and proc.stderr
        while chunk := source.read(1 << 20):
            proc.stdin.write(chunk)
        proc.stdin.close()
        err = proc.stderr.read().decode()
        return CommandResult(self.node, tuple(argv), proc.wait(), "", err, 0.1)


class Nodes:
    def __init__(self, parallel: int = 10, concurrency: Concurrency | None = None) -> None:
        self.parallel, self.concurrency = parallel, concurrency

    def get(self, node: str) -> LocalNode:
        return LocalNode(node, self.concurrency)


class Steps:
    def __init__(self) -> None:
        self.steps: list[tuple[Any, ...]] = []

    def step(self, *args: Any, **extra: Any) -> None:
        self.steps.append(args)


def placements(tmp_path: Path, archive: Path) -> tuple[list[Placement], dict[str, Path]]:
    manifest = write_archive(archive, "zstd", CONTENTS)
    placed, staged = [], {}
    for member in manifest.members:
        spec = ExportSpec(member.type, ("true",), ("true",))
        target = tmp_path / member.node / member.role / member.data_dir
        target.parent.mkdir(parents=True, exist_ok=True)
        p = Placement(member, DataDir(member.node, member.role, member.data_dir, str(target),
                                      spec), "run1")  # fmt: skip
        placed.append(p)
        staged[member.name] = Path(p.staged)
    return placed, staged


def test_every_member_is_staged_from_its_compressed_bytes(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.zst"
    placed, staged = placements(tmp_path, archive)
    where = node_import.regions(archive, write_manifest(archive))
    assert where is not None
    steps = Steps()
    node_import.stage(Nodes(), steps, archive, placed, where, SilentProgress())  # type: ignore[arg-type]
    assert staged[CONTENTS[0].name].read_bytes() == CONTENTS[0].data
    assert staged[CONTENTS[2].name].read_bytes() == CONTENTS[2].data
    tree = staged[CONTENTS[1].name]
    assert (tree / "sub" / "deeper" / "state.db").read_bytes() == random_bytes(70_000, seed=8)
    assert len(steps.steps) == 3


@pytest.mark.parametrize("parallel", [1, 2])
def test_at_most_parallel_nodes_stage_at_once(tmp_path: Path, parallel: int) -> None:
    archive = tmp_path / "a.tar.zst"
    placed, staged = placements(tmp_path, archive)
    where = node_import.regions(archive, write_manifest(archive))
    assert where is not None
    concurrency = Concurrency(parallel, total=3)  # node1 stages two members, one at a time
    node_import.stage(Nodes(parallel, concurrency), Steps(), archive, placed, where,  # type: ignore[arg-type]
                      SilentProgress())  # fmt: skip
    assert not concurrency.over and concurrency.peak == parallel
    assert staged[CONTENTS[2].name].read_bytes() == CONTENTS[2].data


def write_manifest(archive: Path) -> Any:
    from kato.data.verify import verify_archive

    return verify_archive(archive).manifest


def test_a_member_changed_after_verification_is_refused_and_nothing_stays_staged(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "a.tar.zst"
    placed, staged = placements(tmp_path, archive)
    where = node_import.regions(archive, write_manifest(archive))
    assert where is not None
    start, end = where[CONTENTS[2].name]
    data = bytearray(archive.read_bytes())
    data[(start + end) // 2] ^= 0xFF  # inside the redis dump's (incompressible) raw blocks
    archive.write_bytes(bytes(data))
    with pytest.raises(KatoError, match="Restored data doesn't match checksum") as caught:
        node_import.stage(Nodes(), Steps(), archive, placed, where, SilentProgress())  # type: ignore[arg-type]
    assert "node2" in caught.value.message and "changed or was corrupted" in (
        caught.value.hint or ""
    )
    assert not staged[CONTENTS[2].name].exists()


def test_an_archive_not_laid_out_by_kato_has_no_regions(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.zst"
    write_archive(archive, "gzip", CONTENTS)
    assert node_import.regions(archive, write_manifest(archive)) is None


def test_a_format_2_archive_is_checked_here_while_its_members_stage(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.zst"
    placed, staged = placements(tmp_path, archive)
    manifest = read_manifest(archive)
    assert manifest.format == 2 and (manifest.members[1].entries or 0) > 5
    where = node_import.regions(archive, manifest)
    assert where is not None
    node_import.stage(Nodes(), Steps(), archive, placed, where, SilentProgress(), "a.tar.zst")  # type: ignore[arg-type]
    assert staged[CONTENTS[2].name].read_bytes() == CONTENTS[2].data


def test_a_format_2_manifest_that_lies_about_a_tree_s_entries_is_refused(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "a.tar.zst"
    placed, _ = placements(tmp_path, archive)
    manifest = read_manifest(archive)
    tree = manifest.members[1]
    lying = dataclasses.replace(tree, entries=(tree.entries or 0) - 1)
    members = (manifest.members[0], lying, manifest.members[2])
    write_archive(archive, "zstd", CONTENTS, dataclasses.replace(manifest, members=members))
    manifest = read_manifest(archive)
    where = node_import.regions(archive, manifest)
    assert where is not None
    placed = [dataclasses.replace(p, member=m) for p, m in zip(placed, members, strict=True)]
    with pytest.raises(ArchiveInvalid) as caught:
        node_import.stage(Nodes(), Steps(), archive, placed, where, SilentProgress(), "a.tar.zst")  # type: ignore[arg-type]
    assert caught.value.member == tree.name and "tampered" in caught.value.problem
    with pytest.raises(ArchiveInvalid, match="tampered"):
        verify_archive(archive)  # kato data verify says the same


@pytest.mark.parametrize("shown", [None, "a.tar.zst"])
def test_a_member_that_is_not_what_the_manifest_says_is_refused_by_its_sha256(
    tmp_path: Path, shown: str | None
) -> None:
    """The node's check refuses it either way: as an archive that cannot be trusted (format 2,
    not verified beforehand) or as one that changed after it was verified."""
    archive = tmp_path / "a.tar.zst"
    placed, staged = placements(tmp_path, archive)
    manifest = read_manifest(archive)
    other = Content("node2", "redis", "services", "stream", random_bytes(300_000, seed=4))
    write_archive(archive, "zstd", (*CONTENTS[:2], other), manifest)  # the old manifest
    where = node_import.regions(archive, manifest)
    assert where is not None
    with pytest.raises(KatoError, match="sha256 does not match the manifest") as caught:
        node_import.stage(Nodes(), Steps(), archive, placed, where, SilentProgress(), shown)  # type: ignore[arg-type]
    assert isinstance(caught.value, ArchiveInvalid) == (shown is not None)
    assert CONTENTS[2].name in caught.value.message
    if shown is None:
        assert "node2" in caught.value.message and "after it was verified" in (
            caught.value.hint or ""
        )
    assert not staged[CONTENTS[2].name].exists()


def test_only_a_member_that_failed_its_check_refuses_the_archive(tmp_path: Path) -> None:
    """The node's answer says whether the member failed its check (ArchiveInvalid, naming the
    tree's entry) or tar failed for its own reason (the node's failure: fix it, same archive)."""
    archive = tmp_path / "a.tar.zst"
    placed, _ = placements(tmp_path, archive)
    tree = placed[1].member
    unsafe = stream.NodeAnswer(0, "", 1, "device node", "./dev/sda", True)
    refused = node_import._refusal("node1", tree, unsafe, "a.tar.zst")
    assert isinstance(refused, ArchiveInvalid)
    assert (refused.member, refused.problem) == (f"{tree.name}: ./dev/sda", "device node")
    full = stream.NodeAnswer(0, "", 1, "tar: ./big: Cannot write: No space left on device")
    failed = node_import._refusal("node1", tree, full, "a.tar.zst")
    assert not isinstance(failed, ArchiveInvalid) and "No space left" in failed.message
    assert "fix the cause" in (failed.hint or "")
