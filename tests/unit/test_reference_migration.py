"""The reference platform's 1.2.0 controller and migration, off-node: what they do without
PostgreSQL (refuse, say why, change nothing), and 1.1.0 refusing a registry moved away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kato.release import load_release
from tests.unit.test_reference_platform import Service, request, services, unpack

__all__ = ["services"]  # the fixture, used by name


def migrate(release_dir: Path, data: Path, socket_dir: Path) -> subprocess.CompletedProcess[str]:
    argv = (sys.executable, str(release_dir / "bin/migrate"), "--data-dir", str(data))
    env = {
        **os.environ,
        "KATO_REGISTRY_SOCKET_DIR": str(socket_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(
        (*argv, "--wait", "1"), capture_output=True, text=True, timeout=30, env=env
    )


def test_an_unmigrated_registry_is_neither_served_nor_written_by_the_new_release(
    release_repo: Path, tmp_path: Path, services: list[Service]
) -> None:
    """1.2.0 keeps its registry in PostgreSQL: while a 1.1.0 state.json is still there (the
    migration has not run, or failed), its health check says so and it refuses to register;
    a migration that cannot reach PostgreSQL fails and leaves state.json as it was. (The
    migration itself runs against real PostgreSQL on sandbox nodes: tests/integration.)"""
    old = unpack(release_repo, "controller", "1.1.0", tmp_path)
    new = unpack(release_repo, "controller", "1.2.0", tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    first = Service(old / "bin/controller.py", data)
    services.append(first)
    first.wait_healthy()
    request(f"{first.url}/apps", "POST", json.dumps({"name": "blog"}).encode())
    first.stop()
    before = (data / "state.json").read_text()

    nowhere = tmp_path / "no-postgresql"
    nowhere.mkdir()
    failed = migrate(new, data, nowhere)
    assert failed.returncode == 1
    assert f"PostgreSQL does not accept connections on {nowhere}:5432" in failed.stderr
    assert (data / "state.json").read_text() == before

    second = Service(new / "bin/controller.py", data)
    services.append(second)
    assert second.wait_healthy().status == 200  # alive: /healthz
    health = request(f"{second.url}/healthz/registry")
    assert health.status == 503 and "is not migrated (controller-registry-v2)" in health.body
    refused = request(f"{second.url}/apps", "POST", json.dumps({"name": "shop"}).encode())
    assert refused.status == 503
    assert (data / "state.json").read_text() == before


def test_an_old_release_refuses_a_registry_moved_to_postgresql(
    release_repo: Path, tmp_path: Path, services: list[Service]
) -> None:
    """After the migration only the moved file is left: 1.1.0 must not start empty beside it."""
    old = unpack(release_repo, "controller", "1.1.0", tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "registry-moved-to-postgresql.json").write_text('{"format": 1, "apps": {}}')
    refused = Service(old / "bin/controller.py", data)
    services.append(refused)
    deadline = time.monotonic() + 15
    while refused.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    stderr = refused.process.stderr.read().decode() if refused.process.stderr else ""
    assert refused.process.returncode != 0 and "moved to PostgreSQL" in stderr
    assert "kato upgrade rollback" in stderr
    assert not (data / "state.json").exists()


def test_the_migration_sql_quotes_every_value(release_repo: Path, tmp_path: Path) -> None:
    new = unpack(release_repo, "controller", "1.2.0", tmp_path)
    sys.path.insert(0, str(new / "bin"))
    try:
        import registry_pg  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(new / "bin"))
    assert registry_pg.literal("it's") == "'it''s'"
    with pytest.raises(ValueError):
        registry_pg.literal("a\0b")


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
    assert good.health.http == "http://127.0.0.1:8181/healthz/registry"
    assert set(good.data_dirs) == {"controller", "audit"}
    before = load_release(release_repo, "1.1.0").definitions["controller"]
    assert before.health.http == "http://127.0.0.1:8181/healthz"
    assert set(before.data_dirs) == {"controller"}


def test_a_release_is_named_by_the_sha256_of_its_manifest(release_repo: Path) -> None:
    import hashlib

    release = load_release(release_repo, "1.2.0")
    manifest = (release_repo / "1.2.0/release.yaml").read_bytes()
    assert release.digest == hashlib.sha256(manifest).hexdigest()
    assert set(release.definitions) == set(release.roles)
