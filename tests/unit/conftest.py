"""Fixtures shared by the unit tests: the reference platform's release repository, built once."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_RELEASE = REPO_ROOT / "scripts" / "build-release"

BuildRelease = Callable[..., subprocess.CompletedProcess[str]]


def _build(dest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/build-release DEST ARGS... as a user would."""
    return subprocess.run(
        (str(BUILD_RELEASE), str(dest), *args),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def build_release() -> BuildRelease:
    return _build


@pytest.fixture(scope="session")
def release_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference repository (every version of roles/releases.yaml); tests must not change it."""
    dest = tmp_path_factory.mktemp("releases")
    done = _build(dest)
    assert done.returncode == 0, done.stderr
    return dest
