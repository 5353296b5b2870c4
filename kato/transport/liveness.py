"""Whether a node is still there while a command runs: its output, or its answer to an SSH
keepalive request, heard within the idle timeout. A frozen or cut-off node answers neither;
a node busy with a long, quiet command (a database load) still answers keepalives."""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol


class KeepaliveTransport(Protocol):
    """The part of paramiko's Transport a probe needs."""

    def global_request(self, kind: str, data: Any = ..., wait: bool = ...) -> Any: ...

    def is_active(self) -> bool: ...


class Liveness:
    """When the node of one connection was last heard from; shared by the commands that run
    on that connection at the same time, so one keepalive probe serves them all."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._heard = time.monotonic()
        self._probing = False

    @property
    def probe_every(self) -> float:
        return max(0.5, self.idle_timeout / 4)

    def heard(self) -> None:
        """The node sent something."""
        self._heard = time.monotonic()

    def silent_for(self, transport: KeepaliveTransport) -> float:
        """Seconds since the node was last heard from; asks it for a sign of life (one probe
        at a time) once it has been quiet for probe_every."""
        with self._lock:
            quiet = time.monotonic() - self._heard
            if quiet >= self.probe_every and not self._probing:
                self._probing = True
                threading.Thread(
                    target=self._probe, args=(transport,), name="kato-keepalive", daemon=True
                ).start()
            return quiet

    def _probe(self, transport: KeepaliveTransport) -> None:
        # OpenSSH answers every global request that wants a reply (with "failure" for one it
        # does not know), so any answer is a sign of life. The call returns when the answer
        # comes or the connection closes.
        try:
            transport.global_request("keepalive@openssh.com", wait=True)
            if transport.is_active():
                self.heard()
        except Exception:  # noqa: BLE001, S110 - a failed probe is simply no sign of life
            pass
        finally:
            with self._lock:
                self._probing = False
