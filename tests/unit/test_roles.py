"""Role definitions: the shipped roles validate, and a bad role.yaml reports every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from kato.errors import ExitCode, UsageError
from kato.roles import Health, RolesInvalid, in_start_order, load_role, load_roles, parse_address

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"

GOOD = """\
format: 1
name: web
description: a web role
order: 5
units: [kato-web.service]
health:
  http: http://127.0.0.1:8080/healthz
  timeout: 10
data_dirs:
  pages: /var/lib/kato/data/pages
serves_during_upgrade: true
export: {}
"""


def write_role(root: Path, name: str, text: str) -> Path:
    path = root / name / "role.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def problems_of(root: Path) -> tuple[str, ...]:
    with pytest.raises(RolesInvalid) as caught:
        load_roles(root)
    return caught.value.problems


def test_the_reference_platform_roles_validate() -> None:
    roles = load_roles(ROLES_DIR)
    assert set(roles) == {"router", "controller", "postgresql", "redis", "filesystem", "dea"}
    for name, role in roles.items():
        assert role.units == (f"kato-{name}.service",)
    assert {n: set(r.export) for n, r in roles.items() if r.export} == {
        "postgresql": {"services"},
        "redis": {"services"},
        "controller": {"controller"},
        "filesystem": {"droplets"},
    }
    assert roles["controller"].export["controller"].kind == "tree"
    assert roles["redis"].export["services"].load[-1].endswith("/redis/bin/data-load")
    assert {n for n, r in roles.items() if r.serves_during_upgrade} == {"router", "dea"}
    assert roles["postgresql"].health == Health(timeout=60.0, tcp=("127.0.0.1", 5432))
    assert roles["redis"].health.kind == "command"
    assert roles["router"].health.http == "http://127.0.0.1:80/healthz"
    assert roles["dea"].data_dirs == {"containers": "/var/lib/kato/data/containers"}


def test_start_order_follows_order_then_name() -> None:
    ordered = [role.name for role in in_start_order(load_roles(ROLES_DIR).values())]
    assert ordered == ["postgresql", "redis", "controller", "filesystem", "dea", "router"]


def test_a_good_role_loads(tmp_path: Path) -> None:
    role = load_role(write_role(tmp_path, "web", GOOD))
    assert role.name == "web"
    assert role.order == 5
    assert role.health == Health(timeout=10.0, http="http://127.0.0.1:8080/healthz")
    assert role.data_dirs == {"pages": "/var/lib/kato/data/pages"}


def test_a_bad_role_lists_every_problem_with_its_path(tmp_path: Path) -> None:
    bad = (
        GOOD.replace("name: web", "name: www")
        .replace("order: 5", "order: -1")
        .replace("  timeout: 10", "  tcp: 127.0.0.1:8080\n  timeout: 10")
        .replace("/var/lib/kato/data/pages", "data/pages")
        .replace("units: [kato-web.service]", "units: [kato web]")
        .replace("export: {}", "export: {}\ncolour: blue")
    )
    path = write_role(tmp_path, "web", bad)
    problems = problems_of(tmp_path)
    assert f"{path}: health: exactly one of http, tcp, command" in problems
    assert f"{path}: name: must equal its directory name 'web', not 'www'" in problems
    expected_prefixes = ["colour: unknown key", "order: must be", "units[0]:", "data_dirs.pages:"]
    for prefix in expected_prefixes:
        assert any(p.startswith(f"{path}: {prefix}") for p in problems), (prefix, problems)
    assert len(problems) == 6


def test_problems_of_every_file_are_reported_together(tmp_path: Path) -> None:
    write_role(tmp_path, "web", GOOD.replace("format: 1", "format: 2"))
    write_role(tmp_path, "db", GOOD.replace("name: web", "name: db").replace("health:", "hc:"))
    with pytest.raises(UsageError) as caught:
        load_roles(tmp_path)
    assert caught.value.exit_code == ExitCode.USAGE
    assert "web/role.yaml: format: must be 1, not 2" in caught.value.message
    assert "db/role.yaml: health: required" in caught.value.message
    assert "db/role.yaml: hc: unknown key" in caught.value.message


def test_missing_and_empty_keys_are_required(tmp_path: Path) -> None:
    path = write_role(tmp_path, "web", "format: 1\nname: web\ndata_dirs:\n")
    problems = problems_of(tmp_path)
    assert f"{path}: data_dirs: must have a value" in problems
    for key in ("description", "order", "units", "health", "serves_during_upgrade", "export"):
        assert f"{path}: {key}: required" in problems


@pytest.mark.parametrize(
    ("health", "problem"),
    [
        ("{timeout: 10}", "health: exactly one of http, tcp, command"),
        ("{tcp: localhost, timeout: 10}", "health.tcp: must be HOST:PORT"),
        ("{tcp: '127.0.0.1:70000', timeout: 10}", "health.tcp: must be HOST:PORT"),
        ("{http: 'ftp://x/', timeout: 10}", "health.http: must be an http:// or https:// URL"),
        ("{command: [], timeout: 10}", "health.command: must be a non-empty argv list"),
        ("{command: redis-cli ping, timeout: 10}", "health.command: must be a non-empty argv"),
        ("{tcp: '127.0.0.1:1', timeout: 0}", "health.timeout: must be a number of seconds > 0"),
        ("{tcp: '127.0.0.1:1', timeout: 5, retries: 3}", "health.retries: unknown key"),
        ("[http]", "health: must be a mapping"),
    ],
)
def test_health_problems(tmp_path: Path, health: str, problem: str) -> None:
    text = GOOD.replace(
        "health:\n  http: http://127.0.0.1:8080/healthz\n  timeout: 10", f"health: {health}"
    )
    path = write_role(tmp_path, "web", text)
    assert any(p.startswith(f"{path}: {problem}") for p in problems_of(tmp_path))


def test_health_forms(tmp_path: Path) -> None:
    text = GOOD.replace("http: http://127.0.0.1:8080/healthz", "command: [pg_isready, -q]")
    assert load_role(write_role(tmp_path, "web", text)).health.command == ("pg_isready", "-q")
    assert parse_address("[::1]:5432") == ("::1", 5432)
    assert parse_address("db.example:5432") == ("db.example", 5432)
    assert parse_address("::1:5432") is None
    assert parse_address("127.0.0.1") is None


def test_a_unit_shipped_by_two_roles_is_a_conflict(tmp_path: Path) -> None:
    write_role(tmp_path, "web", GOOD)
    write_role(tmp_path, "api", GOOD.replace("name: web", "name: api"))
    assert problems_of(tmp_path) == (
        f"{tmp_path}/web/role.yaml: units: kato-web.service is also shipped by api",
    )


def test_unreadable_yaml_and_wrong_shapes(tmp_path: Path) -> None:
    broken = write_role(tmp_path, "web", "format: 1\nname: [web\n")
    listed = write_role(tmp_path, "api", "- format: 1\n")
    problems = problems_of(tmp_path)
    assert any(p.startswith(f"{broken}: is not valid YAML (line ") for p in problems)
    assert f"{listed}: must be a mapping of the role's keys" in problems


def test_no_roles_at_all_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="holds no role"):
        load_roles(tmp_path)
    with pytest.raises(UsageError, match="no roles directory"):
        load_roles(tmp_path / "missing")


def test_export_names_only_declared_data_dirs_and_whole_commands(tmp_path: Path) -> None:
    write_role(
        tmp_path,
        "web",
        GOOD.replace(
            "export: {}",
            "export:\n  logs: tree\n  cache: [dump]\n  db: {dump: [x], load: []}\n"
            "  spool: {dump: [x], load: [y], colour: blue}\n  pages: tree",
        ).replace(
            "  pages: /var/lib/kato/data/pages",
            "  pages: /var/lib/kato/data/pages\n  db: /a/db\n  spool: /a/spool\n  cache: /a/c",
        ),
    )
    found = "\n".join(problems_of(tmp_path))
    assert "export.logs: not one of the role's data_dirs" in found
    assert "export.cache: must be `tree` or a mapping" in found
    assert "export.db.load: must be a non-empty argv list" in found
    assert "export.spool.colour: unknown key" in found
