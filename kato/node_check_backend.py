"""A testinfra backend that reaches nodes through kato's own transport, so `kato node check`
follows every rule other commands do: kato's known_hosts, the OpenSSH config and jump hosts,
per-node logins, and sudo (with its password on stdin). pytest loads it with
`-p kato.node_check_backend`; the cluster file comes from $KATO_CLUSTER."""

from __future__ import annotations

import atexit
from typing import Any

import testinfra.backend
from testinfra.backend import base

from kato import config
from kato.connect import connections
from kato.transport.pool import Connections

NAME = "kato"
_open: list[Connections] = []


def _connections() -> Connections:
    if not _open:
        _open.append(connections(config.load()))
        atexit.register(_open[0].close)
    return _open[0]


class KatoBackend(base.BaseBackend):  # type: ignore[misc]  # testinfra has no type hints
    """`kato://NODE`: each testinfra command runs as `sh -c COMMAND` on NODE."""

    NAME = NAME

    def __init__(self, hostname: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(hostname, **kwargs)
        self.node = hostname

    def run(self, command: str, *args: str, **kwargs: Any) -> Any:
        line = self.get_command(command, *args)
        done = _connections().get(self.node).run(("sh", "-c", line), check=False)
        return self.result(done.status, self.encode(line), done.stdout, done.stderr)


testinfra.backend.BACKENDS[NAME] = f"{__name__}.KatoBackend"
