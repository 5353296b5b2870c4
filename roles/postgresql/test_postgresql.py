"""Read-only checks of a node carrying the postgresql role (pytest-testinfra's `host` fixture)."""

from __future__ import annotations

import yaml
from testinfra.host import Host

UNIT = "kato-postgresql.service"
RELEASE = "/var/lib/kato/releases/current/postgresql"
CONF = "/etc/postgresql/15/kato"


def declared(host: Host) -> str:
    """The data dir as the running release declares it: what PostgreSQL sees, wherever the dir
    lives (a relocated one is bind-mounted there for the unit)."""
    definition = yaml.safe_load(host.file(f"{RELEASE}/role.yaml").content_string)
    return str(definition["data_dirs"]["services"])


def psql(host: Host, query: str) -> str:
    done = host.run("runuser -u postgres -- psql -X -A -t -c %s", query)
    assert done.rc == 0, done.stderr
    return str(done.stdout).strip()


def test_unit_is_installed_enabled_and_running_as_postgres(host: Host) -> None:
    assert host.file(f"/etc/systemd/system/{UNIT}").is_file
    service = host.service(UNIT)
    assert service.is_enabled
    assert service.is_running
    assert service.systemd_properties["User"] == "postgres"


def test_listens_on_port_5432(host: Host) -> None:
    assert host.socket("tcp://127.0.0.1:5432").is_listening


def test_the_kato_cluster_answers_from_the_services_data_dir(host: Host) -> None:
    assert psql(host, "SHOW data_directory") == declared(host)
    assert psql(host, "SHOW cluster_name") == "kato"
    assert psql(host, "SHOW server_version").startswith("15.")


def test_only_kato_postgresql_starts_clusters(host: Host) -> None:
    for cluster in ("main", "kato"):
        start_conf = host.file(f"/etc/postgresql/15/{cluster}/start.conf")
        if start_conf.exists:
            lines = [ln.strip() for ln in start_conf.content_string.splitlines()]
            assert "manual" in lines


def test_release_settings_are_linked_from_the_current_release(host: Host) -> None:
    link = f"{CONF}/conf.d/kato.conf"
    assert host.file(link).is_symlink
    target = host.check_output("readlink %s", link)  # the link itself, not where it leads now
    assert target == f"{RELEASE}/kato.conf"


def test_data_dir_belongs_to_postgres_and_is_private(host: Host, data_dirs: dict[str, str]) -> None:
    """Where it lives now (`kato relocate` may have moved it): kato node check says where."""
    data = host.file(data_dirs["services"])
    assert data.is_directory
    assert (data.user, data.group) == ("postgres", "postgres")
    assert data.mode == 0o700
    assert host.file(f"{data_dirs['services']}/PG_VERSION").content_string.strip() == "15"
