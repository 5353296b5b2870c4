"""Role definitions: load and validate every roles/<role>/role.yaml of a platform (format 1)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from kato import yamldoc
from kato.errors import UsageError
from kato.role_export import ExportSpec, parse_export

FORMAT = 1
ROLE_FILE = "role.yaml"
HEALTH_KINDS = ("http", "tcp", "command")
KEYS = (
    "format",
    "name",
    "description",
    "order",
    "units",
    "health",
    "data_dirs",
    "serves_during_upgrade",
    "export",
)
OPTIONAL_KEYS = ("data_service",)
NAME_PATTERN = re.compile(r"\A[a-z][a-z0-9-]{0,39}\Z")
UNIT_PATTERN = re.compile(r"\A[A-Za-z0-9@_.:-]+\.(service|socket|timer|target|path|mount)\Z")
DATA_DIR_PATTERN = re.compile(r"\A[a-z][a-z0-9_-]{0,39}\Z")


class RolesInvalid(UsageError):
    """One or more role.yaml files are wrong: every problem, each prefixed by its path."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        listing = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(
            f"{count} problem{'' if count == 1 else 's'} in the role definitions:\n{listing}",
            hint="docs/roles.md describes role.yaml",
        )


@dataclass(frozen=True)
class Health:
    """How kato tells a role is up: exactly one of an HTTP GET answering 2xx, a TCP connect,
    or a command exiting 0, each within `timeout` seconds."""

    timeout: float
    http: str | None = None
    tcp: tuple[str, int] | None = None
    command: tuple[str, ...] | None = None

    @property
    def kind(self) -> str:
        if self.http is not None:
            return "http"
        return "tcp" if self.tcp is not None else "command"


@dataclass(frozen=True)
class Role:
    """One role of the platform, as its role.yaml declares it."""

    name: str
    description: str
    order: int
    units: tuple[str, ...]
    health: Health
    data_dirs: Mapping[str, str]
    serves_during_upgrade: bool
    export: Mapping[str, ExportSpec]
    data_service: bool = False  # left running and untouched by a --stateless upgrade


class _Report:
    """Collects the problems of one file, each as `PATH: FIELD: WHAT`."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems

    def add(self, field: str, message: str) -> None:
        where = f"{self.path}: {field}" if field else str(self.path)
        self.problems.append(f"{where}: {message}")


def load_roles(directory: Path | str) -> dict[str, Role]:
    """Every role under `directory` (one `<role>/role.yaml` each), validated all together."""
    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"there is no roles directory at {root}")
    problems: list[str] = []
    roles: dict[str, Role] = {}
    for path in sorted(root.glob(f"*/{ROLE_FILE}")):
        role = _load_file(path, _Report(path, problems))
        if role is not None:
            roles[role.name] = role
    if not roles and not problems:
        raise UsageError(f"{root} holds no role", hint=f"each role is a <role>/{ROLE_FILE}")
    problems.extend(_unit_conflicts(root, roles))
    if problems:
        raise RolesInvalid(problems)
    return roles


def load_role(path: Path | str) -> Role:
    """One role from its role.yaml (its directory name must be the role's name)."""
    problems: list[str] = []
    role = _load_file(Path(path), _Report(Path(path), problems))
    if role is None or problems:
        raise RolesInvalid(problems)
    return role


def parse_definition(raw: object, name: str, where: str, problems: list[str]) -> Role | None:
    """One role's definition carried inside another document (a release.yaml), named `name`;
    each problem is added as `WHERE: FIELD: WHAT`."""
    report = _Report(where, problems)
    if not isinstance(raw, dict):
        report.add("", "must be a mapping of the role's keys (as in role.yaml)")
        return None
    return _parse_role(raw, name, report)


def in_start_order(roles: Iterable[Role]) -> tuple[Role, ...]:
    """Lower `order` first, then by name; stop in the reverse of this."""
    return tuple(sorted(roles, key=lambda role: (role.order, role.name)))


def _load_file(path: Path, report: _Report) -> Role | None:
    try:
        raw = yamldoc.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        report.add("", f"cannot be read: {exc.strerror}")
        return None
    except yamldoc.YamlProblem as exc:
        report.add("", f"is not valid YAML ({exc})")
        return None
    if not isinstance(raw, dict):
        report.add("", "must be a mapping of the role's keys")
        return None
    return _parse_role(raw, path.parent.name, report)


def _parse_role(raw: Mapping[str, object], directory_name: str, report: _Report) -> Role | None:
    before = len(report.problems)
    for key in sorted(set(raw) - set(KEYS) - set(OPTIONAL_KEYS), key=str):
        report.add(str(key), f"unknown key (known: {', '.join(KEYS + OPTIONAL_KEYS)})")
    for key in KEYS:
        if raw.get(key) is None:
            report.add(key, "required" if key not in raw else "must have a value")
    if "format" in raw and (raw["format"] != FORMAT or isinstance(raw["format"], bool)):
        report.add("format", f"must be {FORMAT}, not {raw['format']!r}")
    name = _name(raw.get("name"), directory_name, report)
    description = _description(raw.get("description"), report)
    order = _order(raw.get("order"), report)
    units = _units(raw.get("units"), report)
    health = _health(raw.get("health"), report)
    data_dirs = _data_dirs(raw.get("data_dirs"), report)
    serves = raw.get("serves_during_upgrade")
    if serves is not None and not isinstance(serves, bool):
        report.add("serves_during_upgrade", "must be true or false")
    data_service = raw.get("data_service", False)
    if not isinstance(data_service, bool):
        report.add("data_service", "must be true or false")
    export = None
    if raw.get("export") is not None and data_dirs is not None:
        export = parse_export(raw["export"], data_dirs, report.add)
    if (
        len(report.problems) > before
        or name is None
        or description is None
        or order is None
        or units is None
        or health is None
        or data_dirs is None
        or not isinstance(serves, bool)
        or export is None
    ):
        return None
    return Role(
        name, description, order, units, health, data_dirs, serves, export, data_service is True
    )


def _name(value: object, directory_name: str, report: _Report) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        report.add("name", "must be lower-case letters, digits and '-', starting with a letter")
        return None
    if value != directory_name:
        report.add("name", f"must equal its directory name {directory_name!r}, not {value!r}")
        return None
    return value


def _description(value: object, report: _Report) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        report.add("description", "must be a non-empty string")
        return None
    return value.strip()


def _order(value: object, report: _Report) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        report.add("order", f"must be a whole number >= 0, not {value!r}")
        return None
    return value


def _units(value: object, report: _Report) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        report.add("units", "must be a non-empty list of systemd unit names")
        return None
    good = True
    for index, unit in enumerate(value):
        if not isinstance(unit, str) or not UNIT_PATTERN.match(unit):
            report.add(f"units[{index}]", f"not a systemd unit name: {unit!r}")
            good = False
        elif value.index(unit) != index:
            report.add(f"units[{index}]", f"{unit} is listed twice")
            good = False
    return tuple(value) if good else None


def _health(value: object, report: _Report) -> Health | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        report.add("health", "must be a mapping: one of http, tcp, command, and timeout")
        return None
    for key in sorted(set(value) - {*HEALTH_KINDS, "timeout"}, key=str):
        report.add(f"health.{key}", "unknown key (known: http, tcp, command, timeout)")
    timeout = value.get("timeout")
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        report.add("health.timeout", f"must be a number of seconds > 0, not {timeout!r}")
        timeout = None
    kinds = [kind for kind in HEALTH_KINDS if kind in value]
    if len(kinds) != 1:
        report.add("health", "exactly one of http, tcp, command")
        return None
    http = _http(value["http"], report) if kinds == ["http"] else None
    tcp = _tcp(value["tcp"], report) if kinds == ["tcp"] else None
    command = _command(value["command"], report) if kinds == ["command"] else None
    if timeout is None or (http is None and tcp is None and command is None):
        return None
    return Health(float(timeout), http, tcp, command)


def _http(value: object, report: _Report) -> str | None:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        report.add("health.http", f"must be an http:// or https:// URL, not {value!r}")
        return None
    return str(value)


def _tcp(value: object, report: _Report) -> tuple[str, int] | None:
    address = parse_address(value) if isinstance(value, str) else None
    if address is None:
        report.add("health.tcp", f"must be HOST:PORT (e.g. 127.0.0.1:5432), not {value!r}")
    return address


def parse_address(text: str) -> tuple[str, int] | None:
    """(host, port) from `HOST:PORT` or `[IPV6]:PORT`, or None when it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    elif ":" in host or not re.match(r"^[A-Za-z0-9.-]+$", host):
        return None
    return host, int(port)


def _command(value: object, report: _Report) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        report.add("health.command", "must be a non-empty argv list of strings")
        return None
    if not value[0]:
        report.add("health.command", "its first element must name a program")
        return None
    return tuple(value)


def _data_dirs(value: object, report: _Report) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        report.add("data_dirs", "must be a mapping of name to absolute path ({} for none)")
        return None
    found: dict[str, str] = {}
    for name, path in value.items():
        if not isinstance(name, str) or not DATA_DIR_PATTERN.match(name):
            report.add(f"data_dirs.{name}", "name must be lower-case letters, digits, '_', '-'")
        elif not isinstance(path, str) or not _is_clean_absolute(path):
            report.add(f"data_dirs.{name}", f"must be a normalised absolute path, not {path!r}")
        else:
            found[name] = path
    return found


def _is_clean_absolute(path: str) -> bool:
    pure = PurePosixPath(path)
    return pure.is_absolute() and str(pure) == path and ".." not in pure.parts and path != "/"


def _unit_conflicts(root: Path, roles: Mapping[str, Role]) -> list[str]:
    """Two roles shipping the same unit would overwrite each other in /etc/systemd/system."""
    owner: dict[str, str] = {}
    problems = []
    for role in sorted(roles.values(), key=lambda r: r.name):
        for unit in role.units:
            if unit in owner:
                where = root / role.name / ROLE_FILE
                problems.append(f"{where}: units: {unit} is also shipped by {owner[unit]}")
            owner.setdefault(unit, role.name)
    return problems


def bundled_directory() -> Path:
    """The role definitions kato itself carries: `kato/_roles` in an installed wheel (package
    data, see setup.py), else `roles/` of the checkout this kato runs from."""
    package = Path(__file__).resolve().parent
    installed = package / "_roles"
    return installed if installed.is_dir() else package.parent / "roles"
