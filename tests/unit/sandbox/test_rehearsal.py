"""A rehearsal's archive is verified and its shape checked before a sandbox is made
(kato/sandbox/rehearsal.py), on archives built like export writes them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kato.data.verify import ArchiveInvalid
from kato.errors import PreflightRefused
from kato.progress import SilentProgress
from kato.sandbox.rehearsal import read
from tests.unit.data.build import Content, inner_tree, manifest_of, write_archive

TREE = inner_tree([])


def archive(path: Path, nodes: dict[str, str], version: str = "1.0.0") -> Path:
    contents = [Content(node, role, "controller", "tree", TREE) for node, role in nodes.items()]
    manifest = replace(manifest_of([c.member() for c in contents]), platform_version=version)
    write_archive(path, "zstd", contents, manifest)
    return path


def test_an_archive_of_the_reference_shape_fits_and_names_its_version(tmp_path: Path) -> None:
    found = read(str(archive(tmp_path / "a.tar.zst", {"node1": "controller"})), 3, SilentProgress())
    assert (found.version, found.carriers) == ("1.0.0", {"controller": 1})


def test_a_shape_the_sandbox_cannot_take_is_refused_with_a_node_count_that_fits(
    tmp_path: Path,
) -> None:
    two_routers = archive(tmp_path / "b.tar.zst", {"node2": "router", "node3": "router"})
    with pytest.raises(PreflightRefused, match="router on 2 node") as caught:
        read(str(two_routers), 2, SilentProgress())
    assert caught.value.hint == "pass --nodes 3"


def test_an_unknown_version_and_a_damaged_archive_are_refused(tmp_path: Path) -> None:
    newer = archive(tmp_path / "c.tar.zst", {"node1": "controller"}, version="9.0.0")
    with pytest.raises(PreflightRefused, match="platform 9.0.0"):
        read(str(newer), 3, SilentProgress())
    damaged = tmp_path / "d.tar.zst"
    data = bytearray(archive(tmp_path / "e.tar.zst", {"node1": "controller"}).read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ArchiveInvalid):
        read(str(damaged), 3, SilentProgress())
