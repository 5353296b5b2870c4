"""A session: what every command that changes nodes holds while it runs (its connections, the
cluster lock and its journal), opened and closed in one place.

    with session(cluster, command, lock_wait=..., dry_run=..., progress=...) as s:
        facts = gather(s.transport(node))      # no lock needed to look
        s.begin()                              # lock + journal (rollout() calls it too)
        report = rollout(s, changes, batching)

The lock is taken by begin(), not on entry, so a dry run or a command that finds nothing to do
neither waits for the lock nor writes the journal. Tests pass `factory=` a fake transport.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from kato.config import Cluster
from kato.connect import connections
from kato.operation import Operation, operation
from kato.progress import Progress, SilentProgress
from kato.transport.base import Transport
from kato.transport.pool import Connections, Factory, ssh_factory


@dataclass
class Session:
    cluster: Cluster
    conns: Connections
    command: list[str]
    lock_wait: float = 0.0
    dry_run: bool = False
    progress: Progress = field(default_factory=SilentProgress)
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)
    _op: Operation | None = field(default=None, repr=False)

    def transport(self, node: str) -> Transport:
        """The node's connection, opened on first use and reused for the whole session."""
        return self.conns.get(node)

    def begin(self) -> Operation:
        """Take the cluster lock and begin the journal (once; a dry run does neither)."""
        if self._op is None:
            self._op = self._stack.enter_context(
                operation(
                    self.conns,
                    self.cluster.core,
                    self.command,
                    lock_wait=self.lock_wait,
                    dry_run=self.dry_run,
                )
            )
        return self._op

    @property
    def op(self) -> Operation:
        """The journaled operation (begun on first use)."""
        return self.begin()

    @property
    def begun(self) -> bool:
        return self._op is not None

    @property
    def parallel(self) -> int:
        return self.cluster.ssh.parallel


@contextmanager
def session(
    cluster: Cluster,
    command: Sequence[str] = (),
    *,
    lock_wait: float = 0.0,
    dry_run: bool = False,
    progress: Progress | None = None,
    factory: Factory = ssh_factory,
) -> Iterator[Session]:
    """Connections for the whole command; the lock and journal once begun; all closed at the
    end, the journal recording how it ended (ok, partial, failed or interrupted)."""
    with connections(cluster, factory) as conns, ExitStack() as stack:
        yield Session(
            cluster, conns, list(command), lock_wait, dry_run, progress or SilentProgress(), stack
        )
