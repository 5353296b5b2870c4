"""A testinfra backend that reaches nodes through kato's own transport, so `kato node check`
follows every rule other commands do: kato's known_hosts, the OpenSSH config and jump hosts,
per-node logins, and sudo (with its password on stdin). pytest loads it with
`-p kato.node_check_backend`; the cluster file comes from $KATO_CLUSTER.

It also gives the checks the fixture `data_dirs`: the data dirs of the check's role as the
release on the node defines them, each where it lives now (after `kato relocate`), so a check
covers a dir its release adds or moves (`kato node check` passes them in $KATO_CHECK_DATA_DIRS).
"""

from __future__ import annotations

import atexit
import json
import os
from typing import Any

import pytest
import testinfra.backend
from testinfra.backend import base

from kato import config
from kato.connect import connections
from kato.datadirs import CHECK_ENV
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


def role_data_dirs(module: str, raw: str | None) -> dict[str, str]:
    """The data dirs of the role whose checks module is `module` (test_<role>)."""
    role = module.rsplit(".", 1)[-1].removeprefix("test_")
    found: dict[str, dict[str, str]] = json.loads(raw) if raw else {}
    return dict(found.get(role, {}))


@pytest.fixture
def data_dirs(request: pytest.FixtureRequest) -> dict[str, str]:
    """name -> path of the checked role's data dirs on this node (see the module docstring)."""
    found = role_data_dirs(request.module.__name__, os.environ.get(CHECK_ENV))
    if not found:
        pytest.skip(f"no data dirs given in ${CHECK_ENV} (run the checks by kato node check)")
    return found
