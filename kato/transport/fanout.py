"""Run per-node work on a bounded thread pool; every node ends succeeded or failed, never lost."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kato.errors import (
    ExitCode,
    HostKeyRefused,
    KatoError,
    LockLost,
    NodeUnreachable,
    RemoteCommandFailed,
    outcome_exit,
)

T = TypeVar("T")


@dataclass(frozen=True)
class NodeFailure:
    node: str
    phase: str
    message: str
    exit_code: int


@dataclass(frozen=True)
class FanOut(Generic[T]):
    succeeded: dict[str, T] = field(default_factory=dict)
    failed: dict[str, NodeFailure] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        """0 all fine; 3 some nodes failed; 5 every node unreachable; 1 every node failed."""
        return outcome_exit(len(self.succeeded), [f.exit_code for f in self.failed.values()])


def failure(node: str, exc: BaseException) -> NodeFailure:
    if isinstance(exc, HostKeyRefused):
        return NodeFailure(node, "host key", exc.message, int(exc.exit_code))
    if isinstance(exc, NodeUnreachable):
        return NodeFailure(node, exc.phase, exc.detail, int(exc.exit_code))
    if isinstance(exc, RemoteCommandFailed):
        return NodeFailure(node, "command", exc.message, int(exc.exit_code))
    if isinstance(exc, KatoError):
        return NodeFailure(node, "run", exc.message, int(exc.exit_code))
    return NodeFailure(node, "internal", f"{type(exc).__name__}: {exc}", int(ExitCode.FAILED))


def fan_out(nodes: Sequence[str], work: Callable[[str], T], limit: int) -> FanOut[T]:
    """Call work(node) for every node, at most `limit` at once. A lost cluster lock is no
    node's failure: it stops the whole operation (raised once every node's work ended)."""
    result: FanOut[T] = FanOut()
    if not nodes:
        return result
    lost: list[LockLost] = []

    def one(node: str) -> None:
        try:
            result.succeeded[node] = work(node)
        except LockLost as exc:
            lost.append(exc)
        except Exception as exc:  # every failure is reported per node, none is swallowed
            result.failed[node] = failure(node, exc)

    with ThreadPoolExecutor(max_workers=max(1, min(limit, len(nodes)))) as pool:
        list(pool.map(one, nodes))
    if lost:
        raise lost[0]
    return result
