"""Read-only checks of a node carrying the dea role (pytest-testinfra's `host` fixture)."""

from __future__ import annotations

import json

from testinfra.host import Host

UNIT = "kato-dea.service"
RELEASE = "/var/lib/kato/releases/current/dea"


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


def test_the_sample_app_listens_on_port_9000(host: Host) -> None:
    assert host.socket("tcp://0.0.0.0:9000").is_listening


def test_the_sample_app_is_healthy_and_says_hello(host: Host) -> None:
    assert get(host, "http://127.0.0.1:9000/healthz") == "ok\n"
    version = host.file(f"{RELEASE}/VERSION").content_string.strip()
    hostname = host.run("hostname").stdout.strip()
    assert get(host, "http://127.0.0.1:9000/") == f"hello from {hostname} (platform {version})\n"


def test_the_instance_lives_in_the_containers_dir(host: Host, data_dirs: dict[str, str]) -> None:
    instance = host.file(f"{data_dirs['containers']}/hello-0/instance.json")
    assert instance.is_file
    assert instance.user == "kato"
    assert json.loads(instance.content_string)["port"] == 9000


def test_containers_dir_belongs_to_kato_and_is_private(
    host: Host, data_dirs: dict[str, str]
) -> None:
    """Where it lives now (`kato relocate` may have moved it): kato node check says where."""
    data = host.file(data_dirs["containers"])
    assert data.is_directory
    assert (data.user, data.group) == ("kato", "kato")
    assert data.mode & 0o007 == 0
