"""Read-only checks of a node carrying the redis role (pytest-testinfra's `host` fixture)."""

from __future__ import annotations

import yaml
from testinfra.host import Host

UNIT = "kato-redis.service"
RELEASE = "/var/lib/kato/releases/current/redis"


def declared(host: Host) -> str:
    """The data dir as the running release declares it: what redis sees, wherever the dir
    lives (a relocated one is bind-mounted there for the unit)."""
    definition = yaml.safe_load(host.file(f"{RELEASE}/role.yaml").content_string)
    return str(definition["data_dirs"]["services"])


def redis(host: Host, *args: str) -> str:
    done = host.run("redis-cli -h 127.0.0.1 -p 6379 " + " ".join(["%s"] * len(args)), *args)
    assert done.rc == 0, done.stderr
    return str(done.stdout).strip()


def test_unit_is_installed_enabled_and_running_as_redis(host: Host) -> None:
    assert host.file(f"/etc/systemd/system/{UNIT}").is_file
    service = host.service(UNIT)
    assert service.is_enabled
    assert service.is_running
    assert service.systemd_properties["User"] == "redis"


def test_listens_on_port_6379(host: Host) -> None:
    assert host.socket("tcp://127.0.0.1:6379").is_listening


def test_answers_ping(host: Host) -> None:
    assert redis(host, "ping") == "PONG"


def test_runs_the_current_release_config_and_data_dir(host: Host) -> None:
    assert redis(host, "config", "get", "dir").splitlines() == ["dir", declared(host)]
    info = redis(host, "info", "server")
    assert f"config_file:{RELEASE}/redis.conf" in info


def test_data_dir_belongs_to_redis_and_is_private(host: Host, data_dirs: dict[str, str]) -> None:
    """Where it lives now (`kato relocate` may have moved it): kato node check says where."""
    data = host.file(data_dirs["services"])
    assert data.is_directory
    assert (data.user, data.group) == ("redis", "redis")
    assert data.mode & 0o007 == 0


def test_debians_own_redis_stays_off(host: Host) -> None:
    assert not host.service("redis-server.service").is_enabled
