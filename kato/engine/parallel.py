"""Run per-node work on a bounded set of threads, where Ctrl-C stops what has not started,
lets what is in flight finish, and says so (the rollout then undoes those nodes)."""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kato.progress import notice

T = TypeVar("T")
TICK = 0.05  # the main thread wakes this often, so Ctrl-C is seen at once
INTERRUPTED = (
    "interrupted: the nodes in flight finish their step, then what was changed is undone "
    "(this can take as long as a restart)"
)
STILL_UNDOING = "still finishing and undoing: kato exits when every node is back"


@dataclass
class Ran(Generic[T]):
    values: dict[str, T] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)
    cut: list[str] = field(default_factory=list)  # work that Ctrl-C broke off inside
    interrupted: bool = False


_handlers: list[Callable[[], None]] = []  # innermost last; Ctrl-C calls every one


@contextmanager
def ctrl_c(handler: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C calls handler() instead of raising KeyboardInterrupt at some random point, while
    this thread (the main one, with Python's default handler in place) waits. Nested inside
    another ctrl_c (a rollout around its parallel steps), Ctrl-C calls both: the inner one stops
    its work, the outer one stops before its next step."""
    if _handlers:
        _handlers.append(handler)
        try:
            yield
        finally:
            _handlers.remove(handler)
        return
    mine = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if mine else None
    if previous is not signal.default_int_handler:
        yield
        return
    _handlers.append(handler)
    said: list[int] = []

    def on_ctrl_c(number: int, frame: object) -> None:
        # said here, once per Ctrl-C, whatever the command prints (some show no progress): an
        # operator who sees nothing for the minute an undo can take would press it again
        notice(STILL_UNDOING if said else INTERRUPTED)
        said.append(number)
        for h in list(_handlers):
            h()

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _handlers.remove(handler)


def in_parallel(nodes: Sequence[str], work: Callable[[str], T], limit: int) -> Ran[T]:
    """work(node) for every node, at most `limit` at once; every node ends in values, errors,
    cut, or (after Ctrl-C) nowhere: never started."""
    ran: Ran[T] = Ran()
    stop, finished = threading.Event(), threading.Semaphore(0)
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for node in nodes:
        todo.put(node)

    def worker() -> None:
        try:
            while not stop.is_set():
                try:
                    node = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    ran.values[node] = work(node)
                except KeyboardInterrupt:
                    stop.set()
                    ran.cut.append(node)
                except Exception as exc:  # kept per node; the caller reports it with its phase
                    ran.errors[node] = exc
        finally:
            finished.release()

    def interrupted() -> None:
        stop.set()

    count = min(limit, len(nodes))
    with ctrl_c(interrupted):
        for _ in range(count):
            threading.Thread(target=worker, name="kato-node", daemon=True).start()
        waiting = count
        while waiting:
            try:
                while waiting and finished.acquire(timeout=TICK):
                    waiting -= 1
            except KeyboardInterrupt:  # only when someone else's handler raised it
                interrupted()
    ran.interrupted = stop.is_set()
    return ran


def shielded(work: Callable[[], T]) -> T:
    """work() on its own thread, so a Ctrl-C while it runs (an undo) cannot break it off."""
    ran = in_parallel(["-"], lambda _: work(), 1)
    while "-" not in ran.values:
        if "-" in ran.errors:
            raise ran.errors["-"]
        ran = in_parallel(["-"], lambda _: work(), 1)
    return ran.values["-"]
