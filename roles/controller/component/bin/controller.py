#!/usr/bin/python3
"""kato controller: the platform's small HTTP API (/healthz, /version, GET and POST /apps).

Its state (the app registry and a count of updates) is one JSON file in its data dir, replaced
atomically on every change (temp file, fsync, rename, fsync of the dir): a crash or a power cut
leaves the old state or the new one, never half of one. The release's REGISTRY_FORMAT file says
which format of that file it keeps (1 when absent; 2: every app has `created`); a file of
another format is refused, never rewritten: the release's migration converts it. A release
whose REGISTRY_STORE file says `postgresql` (1.2.0 on) keeps the registry in PostgreSQL instead
(bin/registry_pg.py, shipped with it) and answers /healthz/registry only while that table does.
Standard library only: it runs on the node's python3.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import tempfile
import threading
from datetime import UTC, datetime
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PLATFORM = "kato-reference"
ROLE = "controller"
STATE_FILE = "state.json"
STATE_FORMAT = 1
MOVED_FILE = "registry-moved-to-postgresql.json"  # left by 1.2.0's migration
MAX_BODY = 64 * 1024
APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
log = logging.getLogger(ROLE)


class Registry:
    """The app registry, kept in DATA_DIR/state.json in the release's registry format."""

    def __init__(self, data_dir: Path, state_format: int = STATE_FORMAT) -> None:
        self.path = data_dir / STATE_FILE
        self.format = state_format
        self.lock = threading.Lock()
        self.state = self._load()

    def _load(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            if (self.path.parent / MOVED_FILE).exists():  # never start empty beside it
                raise SystemExit(
                    f"{self.path.parent}: the registry was moved to PostgreSQL by a newer "
                    "release's migration; restore the pre-upgrade export (kato upgrade rollback)"
                ) from None
            return {"format": self.format, "updates": 0, "apps": {}}
        if state.get("format") != self.format:
            raise SystemExit(
                f"{self.path}: state format {state.get('format')!r}, this release keeps format "
                f"{self.format} (a newer release's data, or a migration that has not run)"
            )
        return state

    def problem(self) -> str | None:
        """Why the registry cannot serve: never, once its file was read."""
        return None

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            copy: dict[str, Any] = json.loads(json.dumps(self.state))
            return copy

    def register(self, name: str, instances: int) -> dict[str, Any]:
        with self.lock:
            now = datetime.now(UTC).isoformat(timespec="seconds")
            app = {"name": name, "instances": instances, "updated": now}
            if self.format >= 2:
                app["created"] = self.state["apps"].get(name, {}).get("created", now)
            state = {**self.state, "apps": {**self.state["apps"], name: app}}
            state["updates"] = self.state["updates"] + 1
            write_atomically(self.path, json.dumps(state, indent=2, sort_keys=True) + "\n")
            self.state = state
            return app


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class Handler(BaseHTTPRequestHandler):
    server_version = "kato-controller"

    def __init__(self, *args: Any, registry: Any, version: str, **kwargs: Any) -> None:
        self.registry = registry
        self.version = version
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        try:
            self.answer_get()
        except Exception as exc:  # the registry's store failed: say so, keep serving
            log.error("GET %s: %s", self.path, exc)
            self.reply_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})

    def answer_get(self) -> None:
        if self.path == "/healthz":
            self.reply(HTTPStatus.OK, "ok\n")
        elif self.path == "/healthz/registry":
            problem = self.registry.problem()
            if problem is None:
                self.reply(HTTPStatus.OK, "ok\n")
            else:
                self.reply_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": problem})
        elif self.path == "/version":
            self.reply_json(HTTPStatus.OK, {"platform": PLATFORM, "version": self.version})
        elif self.path == "/apps":
            self.reply_json(HTTPStatus.OK, self.registry.snapshot())
        else:
            self.reply_json(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})

    def do_POST(self) -> None:
        if self.path != "/apps":
            self.reply_json(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})
            return
        request, problem = self.read_app()
        if problem:
            self.reply_json(HTTPStatus.BAD_REQUEST, {"error": problem})
            return
        try:
            app = self.registry.register(request["name"], request.get("instances", 1))
        except Exception as exc:  # nothing was registered: the store refused
            log.error("POST /apps: %s", exc)
            self.reply_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
            return
        log.info("registered app %s (%d instances)", app["name"], app["instances"])
        self.reply_json(HTTPStatus.CREATED, app)

    def read_app(self) -> tuple[dict[str, Any], str | None]:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            return {}, f"send a JSON body of 1 to {MAX_BODY} bytes"
        try:
            request = json.loads(self.rfile.read(length))
        except ValueError:
            return {}, "the body is not JSON"
        if not isinstance(request, dict) or not APP_NAME.match(str(request.get("name", ""))):
            return {}, "name: lower-case letters, digits and '-', starting with a letter"
        instances = request.get("instances", 1)
        if not isinstance(instances, int) or isinstance(instances, bool) or instances < 0:
            return {}, "instances: a whole number >= 0"
        return request, None

    def reply_json(self, status: HTTPStatus, body: object) -> None:
        self.reply(status, json.dumps(body, sort_keys=True) + "\n", "application/json")

    def reply(self, status: HTTPStatus, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def end_headers(self) -> None:
        self.send_header("X-Platform-Version", self.version)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def read_version(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise SystemExit(f"cannot read the platform version from {path}: {exc.strerror}") from None


def read_registry_format(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except FileNotFoundError:
        return STATE_FORMAT
    except (OSError, ValueError) as exc:
        raise SystemExit(f"cannot read the registry format from {path}: {exc}") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    release_dir = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=8181, help="0 picks a free port")
    parser.add_argument("--data-dir", type=Path, default=Path("/var/lib/kato/data/controller"))
    parser.add_argument("--version-file", type=Path, default=release_dir / "VERSION")
    parser.add_argument("--audit-dir", type=Path, help="append every registration here")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    # A missing data dir is not created here: it may be a relocated mount that is not there,
    # and an empty registry written beside it would hide the real one.
    if not args.data_dir.is_dir():
        raise SystemExit(f"the data dir {args.data_dir} does not exist (the install hook makes it)")
    version = read_version(args.version_file)
    state_format = read_registry_format(args.version_file.with_name("REGISTRY_FORMAT"))
    store = args.version_file.with_name("REGISTRY_STORE")
    if store.exists() and store.read_text().strip() == "postgresql":
        from registry_pg import PgRegistry  # shipped beside this program from 1.2.0 on

        registry: Any = PgRegistry(args.data_dir, args.audit_dir)
    else:
        registry = Registry(args.data_dir, state_format)
    handler = partial(Handler, registry=registry, version=version)
    server = ThreadingHTTPServer((args.bind, args.port), handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host, port = server.server_address[:2]
    log.info("platform %s, listening on %s:%s, data in %s", version, host, port, args.data_dir)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
