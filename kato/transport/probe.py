"""Probe a node's SSH port without logging in: connect, then read the server's banner."""

from __future__ import annotations

import socket
import time

from kato.errors import NodeUnreachable


def ssh_banner(node: str, address: str, port: int = 22, timeout: float = 3.0) -> str:
    """The SSH identification line, or NodeUnreachable naming the phase that failed."""
    try:
        conn = socket.create_connection((address, port), timeout=timeout)
    except TimeoutError as exc:
        raise NodeUnreachable(
            node, "connect", f"no answer from {address}:{port} within {timeout:g}s"
        ) from exc
    except OSError as exc:
        raise NodeUnreachable(node, "connect", f"{address}:{port}: {exc.strerror}") from exc
    with conn:
        conn.settimeout(timeout)
        try:
            banner = conn.recv(256)
        except TimeoutError as exc:
            raise NodeUnreachable(
                node,
                "banner",
                f"{address}:{port} accepted the connection "
                f"but sent no SSH banner within {timeout:g}s",
            ) from exc
        except OSError as exc:
            raise NodeUnreachable(node, "banner", f"{address}:{port}: {exc.strerror}") from exc
    if not banner.startswith(b"SSH-"):
        raise NodeUnreachable(node, "banner", f"{address}:{port} does not speak SSH")
    return banner.decode(errors="replace").strip()


def wait_for_ssh(node: str, address: str, port: int = 22, timeout: float = 60.0) -> str:
    """Poll until the node sends its SSH banner; raise the last NodeUnreachable at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ssh_banner(node, address, port, timeout=min(2.0, timeout))
        except NodeUnreachable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
