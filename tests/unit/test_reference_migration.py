"""The reference platform's 1.2.0 migration, run off-node: a 1.1.0 registry is migrated by
1.2.0's bin/migrate and read by 1.2.0's controller; 1.1.0 refuses the migrated file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from kato.release import load_release
from tests.unit.test_reference_platform import Service, request, services, unpack

__all__ = ["services"]  # the fixture, used by name


def migrate(release_dir: Path, data: Path) -> subprocess.CompletedProcess[str]:
    argv = (sys.executable, str(release_dir / "bin/migrate"), "--data-dir", str(data))
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_the_registry_migrates_and_only_the_new_release_reads_it(
    release_repo: Path, tmp_path: Path, services: list[Service]
) -> None:
    old = unpack(release_repo, "controller", "1.1.0", tmp_path)
    new = unpack(release_repo, "controller", "1.2.0", tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    first = Service(old / "bin/controller.py", data)
    services.append(first)
    first.wait_healthy()
    request(f"{first.url}/apps", "POST", json.dumps({"name": "blog"}).encode())
    first.stop()
    before = json.loads((data / "state.json").read_text())
    assert before["format"] == 1 and "created" not in before["apps"]["blog"]

    done = migrate(new, data)
    assert done.returncode == 0, done.stderr
    after = json.loads((data / "state.json").read_text())
    assert after["format"] == 2
    assert after["apps"]["blog"]["created"] == before["apps"]["blog"]["updated"]
    again = migrate(new, data)
    assert "format 2 already" in again.stdout
    assert json.loads((data / "state.json").read_text()) == after  # idempotent

    second = Service(new / "bin/controller.py", data)
    services.append(second)
    second.wait_healthy()
    assert json.loads(request(f"{second.url}/apps").body)["apps"]["blog"]["created"]
    second.stop()

    refused = Service(old / "bin/controller.py", data)
    services.append(refused)
    deadline = time.monotonic() + 15
    while refused.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    stderr = refused.process.stderr.read().decode() if refused.process.stderr else ""
    assert refused.process.returncode != 0 and "state format 2" in stderr


def test_the_releases_declare_it_and_the_broken_one_checks_a_path_never_served(
    release_repo: Path,
) -> None:
    assert load_release(release_repo, "1.1.0").migrations == ()
    for version in ("1.2.0", "1.2.1-broken", "2.0.0"):
        release = load_release(release_repo, version)
        assert [m.name for m in release.migrations] == ["controller-registry-v2"]
        assert release.kato.contains("0.1.0")
    broken = load_release(release_repo, "1.2.1-broken").definitions["controller"]
    assert broken.health.http == "http://127.0.0.1:8181/healthz/v2"
    good = load_release(release_repo, "1.2.0").definitions["controller"]
    assert good.health.http == "http://127.0.0.1:8181/healthz"


def test_a_release_is_named_by_the_sha256_of_its_manifest(release_repo: Path) -> None:
    import hashlib

    release = load_release(release_repo, "1.2.0")
    manifest = (release_repo / "1.2.0/release.yaml").read_bytes()
    assert release.digest == hashlib.sha256(manifest).hexdigest()
    assert set(release.definitions) == set(release.roles)
