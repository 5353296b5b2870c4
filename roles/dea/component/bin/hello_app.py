#!/usr/bin/python3
"""The sample app the dea runs: answers `hello from <hostname> (platform <version>)`, /healthz."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("hello")


class Handler(BaseHTTPRequestHandler):
    server_version = "kato-hello"

    def __init__(self, *args: Any, version: str, **kwargs: Any) -> None:
        self.version = version
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.answer(with_body=True)

    def do_HEAD(self) -> None:
        self.answer(with_body=False)

    def answer(self, with_body: bool) -> None:
        if self.path == "/healthz":
            body = "ok\n"
        else:
            body = f"hello from {socket.gethostname()} (platform {self.version})\n"
        data = body.encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--version", required=True, help="the platform version to report")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    server = ThreadingHTTPServer((args.bind, args.port), partial(Handler, version=args.version))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("listening on %s:%s", *server.server_address[:2])
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
