"""The app registry in PostgreSQL (from platform 1.2.0): the table `apps` of the database
kato_controller on the node's PostgreSQL (the postgresql role, Unix socket, peer
authentication as the system user kato), and `registry` holding the count of updates.

Shared by the controller (which reads and writes it) and bin/migrate (which makes the schema and
moves a JSON registry into it). Standard library only: SQL goes to `psql` on its stdin, every
value as a quoted literal, each call one transaction.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DATABASE = "kato_controller"
OWNER = "kato"  # the system user the controller runs as, and its PostgreSQL role
SOCKET_DIR = os.environ.get("KATO_REGISTRY_SOCKET_DIR", "/run/postgresql")  # tests: elsewhere
PORT = "5432"
STATE_FILE = "state.json"  # the JSON registry of the releases before 1.2.0
MOVED_FILE = "registry-moved-to-postgresql.json"  # what the migration leaves of it
AUDIT_FILE = "registrations.jsonl"
SNAPSHOT = """
SELECT json_build_object(
  'format', 2,
  'updates', coalesce((SELECT updates FROM registry WHERE id = 1), 0),
  'apps', coalesce((SELECT json_object_agg(name, json_build_object(
      'name', name, 'instances', instances, 'updated', updated, 'created', created))
    FROM apps), '{}'::json));
"""


class SqlFailed(Exception):
    """psql exited non-zero: its last line of stderr says why."""


def literal(value: object) -> str:
    """A SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1)."""
    text = str(value)
    if "\0" in text:
        raise ValueError("a NUL character cannot be stored")
    return "'" + text.replace("'", "''") + "'"


def psql(sql: str, *, user: str | None = None, database: str = DATABASE, one: bool = True) -> str:
    """Run sql (as `user` when root runs this) and return what it printed, unaligned."""
    argv = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", SOCKET_DIR]
    argv += ["-p", PORT, "-d", database, *(["-1"] if one else []), "-f", "-"]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    try:
        done = subprocess.run(
            argv, input=sql, capture_output=True, text=True, timeout=60, cwd="/", check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SqlFailed(f"psql: {exc}") from None
    if done.returncode != 0:
        lines = (done.stderr.strip() or f"psql exited {done.returncode}").splitlines()
        raise SqlFailed(lines[-1])
    return done.stdout.strip()


def wait_ready(seconds: float) -> None:
    """Until PostgreSQL accepts connections on its socket, at most `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        done = subprocess.run(
            ("pg_isready", "-q", "-h", SOCKET_DIR, "-p", PORT), check=False, cwd="/"
        )
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise SqlFailed(f"PostgreSQL does not accept connections on {SOCKET_DIR}:{PORT}")
        time.sleep(0.5)


class PgRegistry:
    """The controller's registry in PostgreSQL; each registration is also appended to the
    audit log in the audit data dir (one JSON line, fsynced)."""

    def __init__(self, data_dir: Path, audit_dir: Path | None = None) -> None:
        self.data_dir = data_dir
        self.audit_dir = audit_dir
        self.lock = threading.Lock()

    def unmigrated(self) -> str | None:
        """A JSON registry not moved yet: the table must not be written (the migration would
        replace it) nor trusted."""
        if (self.data_dir / STATE_FILE).exists():
            return f"{self.data_dir / STATE_FILE} is not migrated (controller-registry-v2)"
        return None

    def problem(self) -> str | None:
        """Why the registry cannot serve (for /healthz/registry), or None."""
        if self.unmigrated():
            return self.unmigrated()
        try:
            psql("SELECT count(created) FROM apps;")
        except SqlFailed as exc:
            return str(exc)
        return None

    def snapshot(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(psql(SNAPSHOT))
        return found

    def register(self, name: str, instances: int) -> dict[str, Any]:
        now = literal(datetime.now(UTC).isoformat(timespec="seconds"))
        sql = (
            "UPDATE registry SET updates = updates + 1 WHERE id = 1;\n"
            "INSERT INTO apps AS a (name, instances, updated, created) "
            f"VALUES ({literal(name)}, {int(instances)}, {now}, {now}) "
            "ON CONFLICT (name) DO UPDATE SET instances = excluded.instances, "
            "updated = excluded.updated RETURNING json_build_object('name', a.name, "
            "'instances', a.instances, 'updated', a.updated, 'created', a.created);\n"
        )
        with self.lock:
            if self.unmigrated():
                raise SqlFailed(str(self.unmigrated()))
            app: dict[str, Any] = json.loads(psql(sql))
            if self.audit_dir is not None:
                append_line(self.audit_dir / AUDIT_FILE, json.dumps(app, sort_keys=True))
        return app


def append_line(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    directory = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
