#!/usr/bin/python3
"""kato filesystem: serves the droplets data dir read-only over HTTP (port 8182), and /healthz.

GET and HEAD only. A path that resolves outside the droplets dir (through a symlink, say) is
answered 404, so a droplet cannot expose the rest of the node. Standard library only.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROLE = "filesystem"
log = logging.getLogger(ROLE)


class Handler(SimpleHTTPRequestHandler):
    server_version = "kato-filesystem"

    def __init__(self, *args: Any, root: str, version: str, **kwargs: Any) -> None:
        self.root = root
        self.version = version
        super().__init__(*args, directory=root, **kwargs)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.reply_health(with_body=True)
        else:
            super().do_GET()

    def do_HEAD(self) -> None:
        if self.path == "/healthz":
            self.reply_health(with_body=False)
        else:
            super().do_HEAD()

    def reply_health(self, with_body: bool) -> None:
        healthy = os.path.isdir(self.root) and os.access(self.root, os.R_OK | os.X_OK)
        body = b"ok\n" if healthy else b"droplets dir unreadable\n"
        self.send_response(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def translate_path(self, path: str) -> str:
        local = super().translate_path(path)
        real = os.path.realpath(local)
        if real == self.root or real.startswith(self.root + os.sep):
            return local
        return os.path.join(self.root, ".kato-outside-of-droplets")  # never exists: a 404

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


def parse_args(argv: list[str]) -> argparse.Namespace:
    release_dir = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=8182, help="0 picks a free port")
    parser.add_argument("--data-dir", type=Path, default=Path("/var/lib/kato/data/droplets"))
    parser.add_argument("--version-file", type=Path, default=release_dir / "VERSION")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    if not args.data_dir.is_dir():
        raise SystemExit(f"the data dir {args.data_dir} does not exist (the install hook makes it)")
    root = os.path.realpath(args.data_dir)
    version = read_version(args.version_file)
    server = ThreadingHTTPServer(
        (args.bind, args.port), partial(Handler, root=root, version=version)
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host, port = server.server_address[:2]
    log.info("platform %s, listening on %s:%s, serving %s", version, host, port, root)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
