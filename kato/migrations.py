"""Data migrations a release declares: what runs, on which role, what data it touches, and
which of them an upgrade from one release to another has to run."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

NAME_PATTERN = re.compile(r"\A[a-z][a-z0-9-]{0,62}\Z")
KEYS = ("name", "role", "run", "data_dirs", "description")


@dataclass(frozen=True)
class Migration:
    """A one-way change of a role's data, run once on every node carrying `role`, after the
    switch to the new release and before the role starts. `run` is an argv whose first element
    is a path relative to the role's directory in the new release; `data_dirs` are the role's
    data dirs it changes (exported before an upgrade, restored by a rollback)."""

    name: str
    role: str
    run: tuple[str, ...]
    data_dirs: tuple[str, ...]
    description: str


def pending(old: Sequence[Migration], new: Sequence[Migration]) -> tuple[Migration, ...]:
    """The migrations of the new release that the old one has not run (by name), in order."""
    done = {m.name for m in old}
    return tuple(m for m in new if m.name not in done)


def undone(old: Sequence[Migration], new: Sequence[Migration]) -> tuple[Migration, ...]:
    """The old release's migrations the new one lacks: going there needs the data restored."""
    return pending(new, old)


def parse_migrations(
    raw: object, where: str, roles: Mapping[str, Iterable[str]], problems: list[str]
) -> tuple[Migration, ...]:
    """`migrations:` of a release.yaml; `roles` maps each role of the release to its data dirs."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(f"{where}: must be a list of migrations")
        return ()
    found: list[Migration] = []
    for number, item in enumerate(raw):
        migration = _parse_one(item, f"{where}[{number}]", roles, problems)
        if migration is not None and migration.name in (m.name for m in found):
            problems.append(f"{where}[{number}].name: {migration.name} is declared twice")
        elif migration is not None:
            found.append(migration)
    return tuple(found)


def _parse_one(
    raw: object, where: str, roles: Mapping[str, Iterable[str]], problems: list[str]
) -> Migration | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping of {', '.join(KEYS)}")
        return None
    before = len(problems)
    for key in sorted(set(raw) - set(KEYS), key=str):
        problems.append(f"{where}.{key}: unknown key (known: {', '.join(KEYS)})")
    for key in KEYS:
        if key not in raw:
            problems.append(f"{where}.{key}: required")
    name, role, run = raw.get("name"), raw.get("role"), raw.get("run")
    dirs, description = raw.get("data_dirs"), raw.get("description")
    if name is not None and (not isinstance(name, str) or not NAME_PATTERN.match(name)):
        problems.append(f"{where}.name: lower-case letters, digits and '-', not {name!r}")
    if role is not None and role not in roles:
        problems.append(f"{where}.role: {role!r} is not a role of this release")
    if run is not None and not _is_relative_argv(run):
        problems.append(f"{where}.run: an argv list whose program is relative to the role's dir")
    if dirs is not None:
        known = set(roles.get(str(role), ()))
        if not isinstance(dirs, list) or not all(d in known for d in dirs):
            problems.append(f"{where}.data_dirs: a list of the role's data dirs ({sorted(known)})")
    if description is not None and (not isinstance(description, str) or not description):
        problems.append(f"{where}.description: must be a non-empty string")
    if len(problems) > before:
        return None
    assert isinstance(run, list) and isinstance(dirs, list)
    return Migration(str(name), str(role), tuple(run), tuple(dirs), str(description))


def _is_relative_argv(value: object) -> bool:
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        return False
    program = PurePosixPath(value[0])
    return bool(value[0]) and not program.is_absolute() and ".." not in program.parts
