"""Read-only checks of a node carrying the filesystem role (pytest-testinfra's `host` fixture)."""

from __future__ import annotations

from testinfra.host import Host

UNIT = "kato-filesystem.service"
RELEASE = "/var/lib/kato/releases/current/filesystem"


def test_unit_is_installed_enabled_and_running_as_kato(host: Host) -> None:
    assert host.file(f"/etc/systemd/system/{UNIT}").is_file
    service = host.service(UNIT)
    assert service.is_enabled
    assert service.is_running
    assert service.systemd_properties["User"] == "kato"


def test_listens_on_port_8182(host: Host) -> None:
    assert host.socket("tcp://0.0.0.0:8182").is_listening


def test_healthz_answers_ok_with_the_platform_version(host: Host) -> None:
    done = host.run("curl -fsS -i --max-time 5 http://127.0.0.1:8182/healthz")
    assert done.rc == 0, done.stderr
    version = host.file(f"{RELEASE}/VERSION").content_string.strip()
    assert f"X-Platform-Version: {version}" in done.stdout
    assert done.stdout.endswith("\r\n\r\nok\n")


def test_serves_read_only(host: Host) -> None:
    url = "http://127.0.0.1:8182/x"
    done = host.run("curl -sS -o /dev/null -w '%%{http_code}' -X PUT --max-time 5 %s", url)
    assert done.stdout == "501"  # PUT is not implemented: nothing was written


def test_droplets_dir_belongs_to_kato_and_is_private(host: Host, data_dirs: dict[str, str]) -> None:
    """Where it lives now (`kato relocate` may have moved it): kato node check says where."""
    data = host.file(data_dirs["droplets"])
    assert data.is_directory
    assert (data.user, data.group) == ("kato", "kato")
    assert data.mode & 0o007 == 0
