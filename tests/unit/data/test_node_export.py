"""kato/data/node_export.py (with assemble.py and readback.py): members read, hashed and
compressed by the real node program (run here on temporary dirs), several "nodes" at once,
assembled into one archive that `kato data verify` accepts, or refused."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from kato.config import DataLimits
from kato.data import node_export, unzstd
from kato.data.limits import UNLIMITED
from kato.data.manifest import FORMAT, Manifest
from kato.data.selection import DataDir
from kato.data.verify import ArchiveInvalid, verify_archive
from kato.errors import KatoError, NodeUnreachable, PreflightRefused
from kato.progress import SilentProgress
from kato.role_export import ExportSpec
from kato.transport.base import CommandResult
from tests.unit.data.local_agent import AgentThere, Concurrency, here

CREATED = "2023-11-14T22:13:20+00:00"


@pytest.fixture(params=["libzstd", "zstd -d"])
def decompression(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The read-back both ways: in this process (libzstd), and through `zstd -d` as where
    the library cannot be loaded."""
    if request.param == "zstd -d":
        monkeypatch.setattr(unzstd, "available", lambda: False)
    else:
        assert unzstd.available()
    return str(request.param)


class LocalNode(AgentThere):
    """A node whose commands run on this machine; `slow` seconds before each stream's end,
    `corrupt` flips one byte of what it sends, `lost` drops the connection mid-stream."""

    def __init__(self, node: str, slow: float = 0.0, corrupt: bool = False,
                 lost: bool = False, hang: float = 0.0,
                 concurrency: Concurrency | None = None) -> None:  # fmt: skip
        self.node, self.slow, self.corrupt, self.lost = node, slow, corrupt, lost
        self.hang, self.concurrency = hang, concurrency

    def stream_out(self, argv: Sequence[str], sink: BinaryIO, *, idle_timeout: float | None = None,
                   stdin: bytes | None = None) -> CommandResult:  # fmt: skip
        with self.concurrency or contextlib.nullcontext():
            return self._stream_out(argv, sink, stdin)

    def _stream_out(
        self, argv: Sequence[str], sink: BinaryIO, stdin: bytes | None
    ) -> CommandResult:
        time.sleep(self.hang)  # a node that sends nothing for that long
        proc = subprocess.Popen(here(argv), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        assert proc.stdin and proc.stdout and proc.stderr
        proc.stdin.write(stdin or b"")
        proc.stdin.close()
        first = True
        while chunk := proc.stdout.read(1 << 16):
            if self.corrupt and first and len(chunk) > 100:
                chunk = chunk[:100] + bytes([chunk[100] ^ 0xFF]) + chunk[101:]
            if self.lost and not first:
                proc.kill()
                raise NodeUnreachable(self.node, "transfer", "the connection failed: EOF")
            first = False
            sink.write(chunk)
        time.sleep(self.slow)
        err = proc.stderr.read().decode()
        return CommandResult(self.node, tuple(argv), proc.wait(), "", err, 0.1)


class Nodes:
    def __init__(self, nodes: dict[str, LocalNode], parallel: int = 10) -> None:
        self.nodes, self.parallel = nodes, parallel

    def get(self, node: str) -> LocalNode:
        return self.nodes[node]


class Steps:
    def __init__(self) -> None:
        self.steps: list[tuple[Any, ...]] = []
        self.thread = threading.current_thread()

    def step(self, *args: Any, **extra: Any) -> None:
        assert threading.current_thread() is self.thread  # the journal is written by one thread
        self.steps.append(args)


def tree(root: Path, seed: int, size: int) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "random.bin").write_bytes(os.urandom(10 * size))
    (root / "log").write_text(f"{seed}\n" * size)
    return root


def export(
    tmp_path: Path,
    sources: list[DataDir],
    nodes: dict[str, LocalNode],
    within: DataLimits = UNLIMITED,
    parallel: int = 10,
) -> Path:
    temp = tmp_path / ".partial"
    temp.touch()
    meta = Manifest(FORMAT, "prod", "1.0.0", "0.1.0", CREATED, ())
    facts = {s: ("0750", "0:0") for s in sources}
    warnings: list[str] = []
    manifest = node_export.write(Nodes(nodes, parallel), Steps(), temp, meta, sources, facts,  # type: ignore[arg-type]
                                 SilentProgress(), warnings, within)  # fmt: skip
    assert [m.name for m in manifest.members] == [s.member for s in sources]
    return temp


def sources_of(tmp_path: Path) -> list[DataDir]:
    dump = ExportSpec("stream", ("sh", "-c", "seq 1 20000"), ("true",))
    return [
        DataDir("node1", "postgresql", "services", "/x", dump),
        DataDir(
            "node1",
            "filesystem",
            "droplets",
            str(tree(tmp_path / "a", 1, 20000)),
            ExportSpec("tree"),
        ),  # fmt: skip
        DataDir(
            "node2",
            "filesystem",
            "droplets",
            str(tree(tmp_path / "b", 2, 50000)),
            ExportSpec("tree"),
        ),  # fmt: skip
        DataDir(
            "node3", "filesystem", "droplets", str(tree(tmp_path / "c", 3, 100)), ExportSpec("tree")
        ),  # fmt: skip
    ]


@pytest.mark.parametrize("slow", ["node1", "node2", "node3"])
@pytest.mark.usefixtures("decompression")
def test_nodes_exporting_at_once_make_one_archive_that_verifies(tmp_path: Path, slow: str) -> None:
    nodes = {n: LocalNode(n, slow=0.5 if n == slow else 0.0) for n in ("node1", "node2", "node3")}
    path = export(tmp_path, sources_of(tmp_path), nodes)
    verified = verify_archive(path)
    assert verified.members == 4 and verified.entries > 6
    assert list(tmp_path.glob(".partial.spool*")) == []  # spool files are gone
    dump = subprocess.run(("tar", "-xOf", str(path), "data/node1/postgresql/services.dump"),
                          capture_output=True, check=True).stdout  # fmt: skip
    assert dump == subprocess.run(("seq", "1", "20000"), capture_output=True).stdout


@pytest.mark.parametrize("parallel", [1, 2])
def test_at_most_parallel_nodes_stream_at_once(tmp_path: Path, parallel: int) -> None:
    concurrency = Concurrency(parallel, total=4)  # node1 streams two members, one at a time
    nodes = {n: LocalNode(n, concurrency=concurrency) for n in ("node1", "node2", "node3")}
    path = export(tmp_path, sources_of(tmp_path), nodes, parallel=parallel)
    assert not concurrency.over and concurrency.peak == parallel
    assert verify_archive(path).members == 4
    assert list(tmp_path.glob(".partial.spool*")) == []


@pytest.mark.usefixtures("decompression")
def test_the_trees_entries_are_limited_across_the_archive(tmp_path: Path) -> None:
    nodes = {n: LocalNode(n) for n in ("node1", "node2", "node3")}
    sources = sources_of(tmp_path)  # three trees of 4 entries each (., sub, sub/random.bin, log)
    export(tmp_path, sources, nodes, DataLimits(max_entries=12))
    (tmp_path / ".partial").unlink()
    with pytest.raises(PreflightRefused) as caught:
        export(tmp_path, sources, nodes, DataLimits(max_entries=11))
    assert caught.value.exit_code == 7
    assert "node3 filesystem droplets: more than 11 files" in caught.value.message
    hint = caught.value.hint or ""
    assert "--max-entries N" in hint and "data.max_entries" in hint
    assert list(tmp_path.glob(".partial.spool*")) == []


@pytest.mark.usefixtures("decompression")
def test_a_member_corrupted_on_its_way_is_caught_by_the_read_back(tmp_path: Path) -> None:
    nodes = {n: LocalNode(n, corrupt=n == "node2") for n in ("node1", "node2", "node3")}
    with pytest.raises((ArchiveInvalid, KatoError)) as caught:
        export(tmp_path, sources_of(tmp_path), nodes)
    assert "node2" in str(caught.value)
    assert list(tmp_path.glob(".partial.spool*")) == []


def test_a_node_lost_mid_stream_fails_naming_it(tmp_path: Path) -> None:
    nodes = {n: LocalNode(n, lost=n == "node2") for n in ("node1", "node2", "node3")}
    with pytest.raises(NodeUnreachable) as caught:
        export(tmp_path, sources_of(tmp_path), nodes)
    assert caught.value.node == "node2"
    assert list(tmp_path.glob(".partial.spool*")) == []


def test_a_failure_is_reported_without_waiting_for_a_hung_node(tmp_path: Path) -> None:
    nodes = {"node1": LocalNode("node1"), "node2": LocalNode("node2", lost=True),
             "node3": LocalNode("node3", hang=60)}  # fmt: skip
    started = time.monotonic()
    with pytest.raises(NodeUnreachable):
        export(tmp_path, sources_of(tmp_path), nodes)
    assert time.monotonic() - started < node_export.ABANDON + 15
    assert list(tmp_path.glob(".partial.spool*")) == []


def test_a_failing_dump_fails_naming_its_command_and_error(tmp_path: Path) -> None:
    failing = ExportSpec("stream", ("sh", "-c", "echo disk on fire >&2; exit 4"), ("true",))
    sources = [DataDir("node1", "postgresql", "services", "/x", failing)]
    with pytest.raises(node_export.ExportFailed, match="exited 4: disk on fire"):
        export(tmp_path, sources, {"node1": LocalNode("node1")})


@pytest.mark.usefixtures("decompression")
def test_an_unsafe_tree_is_refused_by_the_read_back(tmp_path: Path) -> None:
    root = tmp_path / "evil"
    root.mkdir()
    (root / "out").symlink_to("/etc/passwd")
    sources = [DataDir("node1", "filesystem", "droplets", str(root), ExportSpec("tree"))]
    with pytest.raises(ArchiveInvalid, match="points outside the data dir"):
        export(tmp_path, sources, {"node1": LocalNode("node1")})
