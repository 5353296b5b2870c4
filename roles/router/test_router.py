"""Read-only checks of a node carrying the router role (pytest-testinfra's `host` fixture)."""

from __future__ import annotations

from testinfra.host import Host

UNIT = "kato-router.service"
RELEASE = "/var/lib/kato/releases/current/router"


def get(host: Host, url: str) -> tuple[int, dict[str, str], str]:
    """Status, headers (lower-case names) and body of a GET made on the node."""
    done = host.run("curl -sS -i --max-time 5 %s", url)
    assert done.rc == 0, done.stderr
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    status_line, *lines = head.splitlines()
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def current_version(host: Host) -> str:
    return str(host.file(f"{RELEASE}/VERSION").content_string).strip()


def test_unit_is_installed_enabled_and_running(host: Host) -> None:
    assert host.file(f"/etc/systemd/system/{UNIT}").is_file
    service = host.service(UNIT)
    assert service.is_enabled
    assert service.is_running


def test_nginx_runs_the_current_release_config(host: Host) -> None:
    assert host.file(f"{RELEASE}/nginx.conf").is_file
    exec_start = host.service(UNIT).systemd_properties["ExecStart"]
    assert f"-c {RELEASE}/nginx.conf" in exec_start


def test_listens_on_port_80(host: Host) -> None:
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_healthz_answers_ok_with_the_platform_version(host: Host) -> None:
    status, headers, body = get(host, "http://127.0.0.1:80/healthz")
    assert (status, body) == (200, "ok\n")
    assert headers["x-platform-version"] == current_version(host)


def test_app_traffic_carries_the_version_whatever_the_apps_answer(host: Host) -> None:
    status, headers, _ = get(host, "http://127.0.0.1:80/")
    assert status in (200, 502, 504)  # 502/504 when no dea answers yet
    assert headers["x-platform-version"] == current_version(host)


def test_upstreams_are_configured(host: Host) -> None:
    upstreams = host.file("/etc/kato/router-upstreams.conf")
    assert upstreams.is_file
    assert "upstream apps" in upstreams.content_string


def test_debians_own_nginx_stays_off(host: Host) -> None:
    assert not host.service("nginx.service").is_enabled
