"""kato/patch/repository.py: index.yaml validation and verified fetches of the sample repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from kato.errors import ExitCode, UsageError
from kato.patch.repository import (
    PatchChecksumMismatch,
    PatchIndexInvalid,
    fetch,
    load_index,
    parse_index,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("patches")
    done = subprocess.run(
        (str(REPO_ROOT / "scripts/build-patches"), str(dest)), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return dest


def test_the_sample_repository_has_a_patch_per_role_and_one_for_two_roles(sample: Path) -> None:
    index = load_index(sample)
    roles = {p.name: p.roles for p in index.patches}
    assert roles["controller-server-header"] == ("controller",)
    assert roles["router-nosniff"] == ("router",)
    assert roles["apps-served-by"] == ("dea", "router")
    assert {p.severity for p in index.patches} == {"required", "recommended", "optional"}


def test_the_sample_repository_is_reproducible(sample: Path, tmp_path: Path) -> None:
    subprocess.run(
        (str(REPO_ROOT / "scripts/build-patches"), str(tmp_path)), check=True, capture_output=True
    )
    assert (tmp_path / "index.yaml").read_bytes() == (sample / "index.yaml").read_bytes()


def test_fetch_verifies_and_lists_the_files_laid_over_each_role(
    sample: Path, tmp_path: Path
) -> None:
    index = load_index(sample)
    patch = next(p for p in index.patches if p.name == "apps-served-by")
    fetched = fetch(sample, patch, tmp_path)
    assert fetched.files == {"dea": ("bin/hello_app.py",), "router": ("conf.d/apps-patch.conf",)}


def test_a_tampered_artifact_is_refused_and_nothing_is_kept(sample: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(("cp", "-r", str(sample), str(repo)), check=True)
    artifact = repo / "router-nosniff.tar.gz"
    data = artifact.read_bytes()
    artifact.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    patch = next(p for p in load_index(repo).patches if p.name == "router-nosniff")
    with pytest.raises(PatchChecksumMismatch) as caught:
        fetch(repo, patch, tmp_path)
    assert caught.value.exit_code == ExitCode.FAILED
    assert "the artifact of patch router-nosniff has sha256" in caught.value.message
    assert not list(tmp_path.glob("router-nosniff*"))


def test_every_problem_of_an_index_is_listed_with_its_path() -> None:
    raw = {
        "format": 2,
        "platform": "kato-reference",
        "patches": [
            {
                "name": "Bad Name",
                "description": "",
                "severity": "urgent",
                "roles": [],
                "applies_to": ["1.0.0"],
                "artifact": "../x.tar.gz",
                "sha256": "abc",
                "size": -1,
            },
            {"name": "p2"},
        ],
    }
    problems: list[str] = []
    assert parse_index(raw, problems) is None
    assert "index.yaml: format: must be 1, not 2" in problems
    text = "\n".join(problems)
    for field in ("name", "description", "severity", "roles", "artifact", "sha256", "size"):
        assert f"patches[0].{field}:" in text
    assert "index.yaml: patches[1].severity: required" in problems


def test_an_invalid_index_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "index.yaml").write_text(yaml.safe_dump({"format": 1, "platform": "x"}))
    with pytest.raises(PatchIndexInvalid) as caught:
        load_index(tmp_path)
    assert caught.value.exit_code == ExitCode.USAGE
    assert "patches: must be a list" in caught.value.message


def test_an_unknown_name_lists_the_known_ones(sample: Path) -> None:
    with pytest.raises(UsageError) as caught:
        load_index(sample).chosen(["nope"])
    assert "router-nosniff" in str(caught.value.hint)
