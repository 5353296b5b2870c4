"""Release repositories: reading index and manifests, fetching verified artifacts, building."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kato.errors import ExitCode, KatoError, UsageError
from kato.release import (
    ChecksumMismatch,
    ManifestInvalid,
    RepositoryUnreachable,
    fetch_artifact,
    load_index,
    load_release,
)
from kato.roles import load_roles

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLES = {"router", "controller", "postgresql", "redis", "filesystem", "dea"}
BuildRelease = Callable[..., subprocess.CompletedProcess[str]]  # the conftest fixture


@pytest.fixture
def repo(release_repo: Path, tmp_path: Path) -> Path:
    """A private copy of the built repository, for tests that damage it."""
    return Path(shutil.copytree(release_repo, tmp_path / "repo"))


def edit_yaml(path: Path, change: Any) -> None:
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document))


def read_member(tar: tarfile.TarFile, name: str) -> str:
    handle = tar.extractfile(name)
    assert handle is not None
    return handle.read().decode()


def test_index_lists_every_reference_version_oldest_first(release_repo: Path) -> None:
    index = load_index(release_repo)
    assert index.platform == "kato-reference"
    assert index.version_names == ("1.0.0", "1.1.0", "1.2.0", "1.2.1-broken", "2.0.0")
    assert index.versions[1].manifest == "1.1.0/release.yaml"


@pytest.mark.parametrize("form", ["path", "str", "file-url"])
def test_release_loads_from_a_path_or_a_file_url(release_repo: Path, form: str) -> None:
    forms: dict[str, str | Path] = {
        "path": release_repo,
        "str": str(release_repo),
        "file-url": f"file://{release_repo}",
    }
    release = load_release(forms[form], "1.1.0")
    assert (release.platform, release.version) == ("kato-reference", "1.1.0")
    assert set(release.roles) == ROLES
    router = release.roles["router"]
    assert router.path == "1.1.0/router-1.1.0.tar.gz"
    assert router.size == (release_repo / router.path).stat().st_size


def test_every_artifact_fetches_and_verifies(release_repo: Path, tmp_path: Path) -> None:
    release = load_release(release_repo, "1.0.0")
    for role, artifact in release.roles.items():
        fetched = fetch_artifact(release_repo, release, role, tmp_path)
        assert fetched == tmp_path / f"{role}-1.0.0.tar.gz"
        assert hashlib.sha256(fetched.read_bytes()).hexdigest() == artifact.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{role}-1.0.0.tar.gz" for role in ROLES
    )


def test_a_flipped_byte_raises_checksum_mismatch_and_leaves_nothing(
    repo: Path, tmp_path: Path
) -> None:
    release = load_release(repo, "1.0.0")
    artifact = repo / release.roles["redis"].path
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ChecksumMismatch) as caught:
        fetch_artifact(repo, release, "redis", dest)
    assert caught.value.role == "redis"
    assert caught.value.expected == release.roles["redis"].sha256
    assert caught.value.actual == hashlib.sha256(data).hexdigest()
    assert caught.value.exit_code == ExitCode.FAILED
    assert list(dest.iterdir()) == []


def test_a_longer_artifact_is_a_size_mismatch(repo: Path, tmp_path: Path) -> None:
    release = load_release(repo, "1.0.0")
    artifact = repo / release.roles["dea"].path
    artifact.write_bytes(artifact.read_bytes() + b"trailing junk")
    with pytest.raises(ChecksumMismatch, match="size") as caught:
        fetch_artifact(repo, release, "dea", tmp_path)
    assert caught.value.what == "size"
    assert list(tmp_path.iterdir()) == [tmp_path / "repo"]


def test_an_unknown_version_lists_the_available_ones(release_repo: Path) -> None:
    with pytest.raises(UsageError, match="no version '9.9.9'") as caught:
        load_release(release_repo, "9.9.9")
    assert caught.value.hint == "available versions: 1.0.0, 1.1.0, 1.2.0, 1.2.1-broken, 2.0.0"


def test_an_unknown_role_is_a_usage_error(release_repo: Path, tmp_path: Path) -> None:
    release = load_release(release_repo, "1.0.0")
    with pytest.raises(UsageError, match="no role 'mysql'"):
        fetch_artifact(release_repo, release, "mysql", tmp_path)


def test_manifest_problems_name_the_bad_fields(repo: Path) -> None:
    def damage(document: dict[str, Any]) -> None:
        document["version"] = "1.0.1"
        document["roles"]["router"]["sha256"] = "XYZ"
        document["roles"]["redis"]["size"] = -1
        document["roles"]["dea"]["artifact"] = "../../etc/passwd"
        document["extra"] = True

    edit_yaml(repo / "1.0.0/release.yaml", damage)
    with pytest.raises(ManifestInvalid) as caught:
        load_release(repo, "1.0.0")
    problems = caught.value.problems
    manifest = "1.0.0/release.yaml"
    assert f"{manifest}: version: 1.0.1, but index.yaml lists it as 1.0.0" in problems
    assert (
        f"{manifest}: extra: unknown key "
        "(known: format, platform, version, roles, kato, migrations, notes)"
    ) in problems
    for field in ("roles.router.sha256", "roles.redis.size", "roles.dea.artifact"):
        assert any(p.startswith(f"{manifest}: {field}: ") for p in problems), field
    assert len(problems) == 5
    assert isinstance(caught.value, UsageError)
    assert str(repo) in caught.value.message


def test_index_problems_name_the_bad_fields(repo: Path) -> None:
    def damage(document: dict[str, Any]) -> None:
        document["format"] = 2
        document["versions"][0]["version"] = 1.0
        document["versions"][1]["manifest"] = "/srv/1.1.0/release.yaml"

    edit_yaml(repo / "index.yaml", damage)
    with pytest.raises(ManifestInvalid) as caught:
        load_index(repo)
    assert caught.value.problems == (
        "index.yaml: format: must be 1, not 2",
        "index.yaml: versions[0].version: must be a version string such as '1.0.0', not 1.0",
        "index.yaml: versions[1].manifest: must be a relative path inside the repository, "
        "not '/srv/1.1.0/release.yaml'",
    )


def test_a_missing_repository_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(RepositoryUnreachable, match="index.yaml"):
        load_index(tmp_path / "nowhere")


@pytest.mark.parametrize("location", ["http://releases.example/", "ftp://x/", "file://host/x"])
def test_only_paths_file_and_https_urls_are_repositories(location: str) -> None:
    with pytest.raises(UsageError):
        load_index(location)


class FakeResponse(io.BytesIO):
    """What urlopen returns, enough for the release module: read, geturl, a context manager."""

    def __init__(self, data: bytes, url: str) -> None:
        super().__init__(data)
        self.url = url

    def geturl(self) -> str:
        return self.url


def serve_over_https(monkeypatch: pytest.MonkeyPatch, root: Path, base: str) -> list[str]:
    """Answer urlopen for URLs under `base` with the files under root; record what was asked."""
    asked: list[str] = []

    def urlopen(url: str, timeout: float) -> FakeResponse:
        asked.append(url)
        assert timeout > 0
        path = root / url.removeprefix(base) if url.startswith(base) else None
        if path is None or not path.is_file():
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]
        return FakeResponse(path.read_bytes(), url)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def test_an_https_repository(
    release_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = "https://releases.example/kato/"
    asked = serve_over_https(monkeypatch, release_repo, base)
    release = load_release(base.rstrip("/"), "1.1.0")
    fetched = fetch_artifact(base, release, "router", tmp_path)
    assert fetched.read_bytes() == (release_repo / "1.1.0/router-1.1.0.tar.gz").read_bytes()
    assert asked[-1] == base + "1.1.0/router-1.1.0.tar.gz"
    with pytest.raises(RepositoryUnreachable, match="HTTP 404"):
        load_index("https://releases.example/elsewhere/")


def test_https_redirected_to_http_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def urlopen(url: str, timeout: float) -> FakeResponse:
        return FakeResponse(b"format: 1\n", "http://mirror.example/index.yaml")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(RepositoryUnreachable, match="redirected away from https"):
        load_index("https://releases.example/")


def test_a_broken_download_leaves_nothing(
    release_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken(FakeResponse):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 100:
                raise TimeoutError("timed out")
            return super().read(min(size or 50, 50))

    release = load_release(release_repo, "1.0.0")

    def urlopen(url: str, timeout: float) -> FakeResponse:
        return Broken((release_repo / "1.0.0/controller-1.0.0.tar.gz").read_bytes(), url)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(RepositoryUnreachable, match="reading stopped: timed out"):
        fetch_artifact("https://releases.example/", release, "controller", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_same_inputs_give_the_same_bytes(
    release_repo: Path, tmp_path: Path, build_release: BuildRelease
) -> None:
    done = build_release(tmp_path)
    assert done.returncode == 0, done.stderr
    for version in ("1.0.0", "1.1.0"):
        again = (tmp_path / version / "release.yaml").read_text()
        assert again == (release_repo / version / "release.yaml").read_text()
    assert (tmp_path / "index.yaml").read_bytes() == (release_repo / "index.yaml").read_bytes()


def test_versions_differ_in_version_file_and_router_header(release_repo: Path) -> None:
    old, new = load_release(release_repo, "1.0.0"), load_release(release_repo, "1.1.0")
    assert old.roles["router"].sha256 != new.roles["router"].sha256
    for release in (old, new):
        with tarfile.open(release_repo / release.roles["router"].path) as tar:
            assert read_member(tar, "VERSION") == f"{release.version}\n"
            header = f'add_header X-Platform-Version "{release.version}" always;'
            assert header in read_member(tar, "nginx.conf")


def test_each_artifact_ships_the_units_its_role_names(release_repo: Path) -> None:
    roles = load_roles(REPO_ROOT / "roles")
    for version in ("1.0.0", "1.1.0"):
        release = load_release(release_repo, version)
        assert set(release.roles) == set(roles)
        for name, artifact in release.roles.items():
            with tarfile.open(release_repo / artifact.path) as tar:
                units = {m.name.removeprefix("units/") for m in tar if m.name.startswith("units/")}
            assert units == set(roles[name].units), (version, name)


def test_artifacts_are_relative_root_owned_and_dated_alike(release_repo: Path) -> None:
    release = load_release(release_repo, "1.1.0")
    for artifact in release.roles.values():
        with tarfile.open(release_repo / artifact.path) as tar:
            members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        for member in members:
            assert not member.name.startswith("/") and ".." not in member.name.split("/")
            assert (member.uid, member.gid, member.mtime) == (0, 0, 946684800)
            assert member.mode in (0o755, 0o644)
            assert member.isfile() or member.isdir()


def test_a_role_whose_units_do_not_match_is_not_built(
    tmp_path: Path, build_release: BuildRelease
) -> None:
    roles = Path(shutil.copytree(REPO_ROOT / "roles", tmp_path / "roles"))
    (roles / "redis/component/units/kato-redis.service").rename(
        roles / "redis/component/units/redis.service"
    )
    done = build_release(tmp_path / "out", "--roles", str(roles))
    assert done.returncode == 2
    assert "units" in done.stderr and "kato-redis.service" in done.stderr


def test_a_bad_role_yaml_stops_the_build(tmp_path: Path, build_release: BuildRelease) -> None:
    roles = Path(shutil.copytree(REPO_ROOT / "roles", tmp_path / "roles"))
    role_yaml = roles / "dea/role.yaml"
    role_yaml.write_text(role_yaml.read_text().replace("order: 40", "order: soon"))
    done = build_release(tmp_path / "out", "--roles", str(roles))
    assert done.returncode == 2
    assert f"{role_yaml}: order: must be a whole number >= 0, not 'soon'" in done.stderr
    assert not (tmp_path / "out" / "index.yaml").exists()


def test_a_missing_destination_is_a_kato_error(release_repo: Path, tmp_path: Path) -> None:
    release = load_release(release_repo, "1.0.0")
    with pytest.raises(KatoError, match="cannot write into"):
        fetch_artifact(release_repo, release, "router", tmp_path / "missing")
