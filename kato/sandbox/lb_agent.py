#!/usr/bin/python3
"""kato-lb: drain and undrain a router in the sandbox's haproxy through its runtime API (the
admin socket). Installed on the core node as /usr/local/sbin/kato-lb by `kato sandbox up`;
the sandbox's cluster file names it as the load balancer's drain and undrain hooks.

    kato-lb drain ROUTER [TIMEOUT]     no new connections; returns once it has none left
    kato-lb undrain ROUTER [TIMEOUT]   back in; returns once haproxy's checks say it is UP
    kato-lb show                       the backend's servers: name, status, sessions

Standard library only: it runs on the node's python3.
"""

from __future__ import annotations

import socket
import sys
import time

SOCKET = "/run/haproxy/admin.sock"
BACKEND = "routers"


def ask(command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        conn.connect(SOCKET)
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def servers() -> dict[str, dict[str, str]]:
    """`show stat` of the backend's servers, by name (status, scur, ...)."""
    lines = ask("show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    found = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == BACKEND and row.get("svname") not in ("FRONTEND", "BACKEND"):
            found[row["svname"]] = row
    return found


def wait(router: str, done: object, what: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = servers().get(router)
        if row is not None and done(row):  # type: ignore[operator]
            sys.stdout.write(f"{router}: {what} ({row.get('status')})\n")
            return 0
        time.sleep(0.2)
    row = servers().get(router, {})
    sys.stderr.write(f"kato-lb: {router} not {what} within {timeout:g}s: {row.get('status')}\n")
    return 1


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("drain", "undrain", "show"):
        sys.stderr.write("usage: kato-lb drain|undrain ROUTER [TIMEOUT] | kato-lb show\n")
        return 2
    if argv[0] == "show":
        for name, row in servers().items():
            sys.stdout.write(f"{name} {row.get('status')} sessions {row.get('scur')}\n")
        return 0
    router = argv[1]
    timeout = float(argv[2]) if len(argv) > 2 else 60.0
    if router not in servers():
        sys.stderr.write(f"kato-lb: haproxy has no server {router} in {BACKEND}\n")
        return 2
    if argv[0] == "drain":
        said = ask(f"set server {BACKEND}/{router} state drain").strip()
        if said:
            sys.stderr.write(f"kato-lb: {said}\n")
            return 1
        return wait(router, lambda row: row.get("scur") == "0", "drained", timeout)
    said = ask(f"set server {BACKEND}/{router} state ready").strip()
    if said:
        sys.stderr.write(f"kato-lb: {said}\n")
        return 1
    return wait(router, lambda row: row.get("status") == "UP", "serving", timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
