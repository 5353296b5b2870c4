"""Read-only checks of a node carrying the controller role (pytest-testinfra's `host` fixture)."""

from __future__ import annotations

import json

import yaml
from testinfra.host import Host

UNIT = "kato-controller.service"
RELEASE = "/var/lib/kato/releases/current/controller"
BASE = "http://127.0.0.1:8181"


def get(host: Host, url: str) -> str:
    done = host.run("curl -fsS --max-time 5 %s", url)
    assert done.rc == 0, done.stderr
    return str(done.stdout)


def test_unit_is_installed_enabled_and_running_as_kato(host: Host) -> None:
    assert host.file(f"/etc/systemd/system/{UNIT}").is_file
    service = host.service(UNIT)
    assert service.is_enabled
    assert service.is_running
    assert service.systemd_properties["User"] == "kato"


def test_listens_on_port_8181(host: Host) -> None:
    assert host.socket("tcp://0.0.0.0:8181").is_listening


def test_healthz_answers_ok(host: Host) -> None:
    assert get(host, f"{BASE}/healthz") == "ok\n"


def test_version_is_the_current_release(host: Host) -> None:
    version = host.file(f"{RELEASE}/VERSION").content_string.strip()
    assert json.loads(get(host, f"{BASE}/version"))["version"] == version


def test_the_health_check_of_the_running_release_passes(host: Host) -> None:
    """The release's own definition (1.2.0 asks /healthz/registry: the table answers)."""
    definition = yaml.safe_load(host.file(f"{RELEASE}/role.yaml").content_string)
    assert get(host, definition["health"]["http"]) == "ok\n"


def test_app_registry_is_readable_in_the_release_format(host: Host) -> None:
    declared = host.file(f"{RELEASE}/REGISTRY_FORMAT")
    in_postgresql = host.file(f"{RELEASE}/REGISTRY_STORE").exists  # 1.2.0 on: format 2
    wanted = 2 if in_postgresql else int(declared.content_string.strip()) if declared.exists else 1
    registry = json.loads(get(host, f"{BASE}/apps"))
    assert registry["format"] == wanted
    assert isinstance(registry["apps"], dict)


def test_every_data_dir_of_the_release_belongs_to_kato_and_is_private(
    host: Host, data_dirs: dict[str, str]
) -> None:
    """Each dir the node's release declares (1.2.0 adds `audit`), where it lives now."""
    assert "controller" in data_dirs
    for path in data_dirs.values():
        data = host.file(path)
        assert data.is_directory, path
        assert (data.user, data.group) == ("kato", "kato"), path
        assert data.mode & 0o007 == 0, path
    state = host.file(f"{data_dirs['controller']}/state.json")
    if host.file(f"{RELEASE}/REGISTRY_STORE").exists:  # 1.2.0 on: the registry is in PostgreSQL
        assert not state.exists  # moved there by the migration
    elif state.exists:
        assert state.user == "kato"
        assert state.mode & 0o077 == 0
