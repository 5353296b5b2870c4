"""Fixtures of the node programs' tests."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from kato.remote.agent import AGENT


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """The agent's bundle unpacked, as on a node."""
    where = tmp_path / "agent"
    where.mkdir()
    (tmp_path / "bundle.tar").write_bytes(AGENT.bundle)
    with tarfile.open(tmp_path / "bundle.tar") as tar:
        tar.extractall(where, filter="data")
    return where
