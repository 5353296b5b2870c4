"""One connection per node per run, opened on first use and reused for every later step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TypeVar

from kato.errors import NodeUnreachable
from kato.transport.base import SshOptions, Transport

Factory = Callable[[str, str, int, SshOptions], Transport]
T = TypeVar("T")


def ssh_factory(node: str, address: str, port: int, options: SshOptions) -> Transport:
    from kato.transport.ssh import SshTransport

    return SshTransport(node, address, port, options)


class Connections:
    """Lazily opened, cached connections to the nodes named in `addresses`."""

    def __init__(
        self,
        addresses: Mapping[str, tuple[str, int]],
        options: SshOptions,
        factory: Factory = ssh_factory,
        parallel: int = 10,
    ) -> None:
        self._addresses = dict(addresses)
        # How many nodes a command talks to at once (--parallel, else ssh.parallel): the data
        # commands' per-node streams and questions honour it.
        self.parallel = parallel
        self._options = options
        self._factory = factory
        self._open: dict[str, Transport] = {}
        self._locks = {node: threading.Lock() for node in self._addresses}
        # Set while an operation holds the cluster lock: raises when the lock was broken, so
        # no command reaches a node after that (the lock's own calls and the journal's, made
        # with call(), are not fenced).
        self.fence: Callable[[], None] | None = None

    def get(self, node: str) -> Transport:
        """The connection to `node`, for the next command (checked against the fence)."""
        if self.fence is not None:
            self.fence()
        return self._connection(node)

    def _connection(self, node: str) -> Transport:
        with self._locks[node]:
            if node not in self._open:
                address, port = self._addresses[node]
                self._open[node] = self._factory(node, address, port, self._options)
            return self._open[node]

    def drop(self, node: str) -> None:
        """Forget a node's connection (after it rebooted); the next get() reconnects."""
        with self._locks[node]:
            transport = self._open.pop(node, None)
        if transport is not None:
            transport.close()

    def call(self, node: str, work: Callable[[Transport], T], patience: float = 0.0) -> T:
        """work(connection to node), reconnecting for up to `patience` seconds while the node
        does not answer (it may be rebooting)."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return work(self._connection(node))
            except NodeUnreachable:
                self.drop(node)
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1.0)

    def close(self) -> None:
        for node in list(self._open):
            self.drop(node)

    def __enter__(self) -> Connections:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
