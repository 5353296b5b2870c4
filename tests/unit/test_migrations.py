"""Migrations a release declares (kato/migrations.py)."""

from __future__ import annotations

from kato.migrations import Migration, parse_migrations, pending, undone

ROLES = {"controller": ("controller",), "router": ()}
GOOD = {
    "name": "registry-v2",
    "role": "controller",
    "run": ["bin/migrate"],
    "data_dirs": ["controller"],
    "description": "format 2",
}


def migration(name: str) -> Migration:
    return Migration(name, "controller", ("bin/migrate",), ("controller",), name)


def test_a_declared_migration_parses() -> None:
    problems: list[str] = []
    found = parse_migrations([GOOD], "m", ROLES, problems)
    assert problems == []
    assert found == (
        Migration("registry-v2", "controller", ("bin/migrate",), ("controller",), "format 2"),
    )


def test_every_problem_of_a_migration_is_named() -> None:
    problems: list[str] = []
    bad = {**GOOD, "role": "dea", "run": ["/usr/bin/evil"], "data_dirs": ["x"], "extra": 1}
    assert len(parse_migrations([bad, GOOD, GOOD], "m", ROLES, problems)) == 1
    assert "m[0].extra: unknown key (known: name, role, run, data_dirs, description)" in problems
    assert "m[0].role: 'dea' is not a role of this release" in problems
    assert "m[0].run: an argv list whose program is relative to the role's dir" in problems
    assert "m[2].name: registry-v2 is declared twice" in problems


def test_an_upgrade_runs_what_the_old_release_has_not_run() -> None:
    old, new = (migration("a"),), (migration("a"), migration("b"))
    assert pending(old, new) == (migration("b"),)
    assert pending(new, new) == ()
    assert undone(new, old) == (migration("b"),)  # going back from new to old
