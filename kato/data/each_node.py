"""Per-node work for the data commands, at most `limit` nodes at once (--parallel, else the
cluster file's ssh.parallel: Connections.parallel).

each_node: one question per node for the preparation (where each data dir lives, its size,
free space, the node agent): a cluster of N nodes waits N/limit round trips, not N. The first
failure (in the nodes' order) is raised once all have ended.

workers: the threads of export's and import's node streams, which take the nodes in their
order, so the members the archive needs first stream first."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def each_node(nodes: Iterable[str], work: Callable[[str], T], limit: int) -> dict[str, T]:
    """{node: work(node)} for each distinct node, at most `limit` at once."""
    order = list(dict.fromkeys(nodes))
    if len(order) <= 1 or limit <= 1:
        return {node: work(node) for node in order}
    with ThreadPoolExecutor(max_workers=min(limit, len(order))) as pool:
        futures = {node: pool.submit(work, node) for node in order}
    return {node: future.result() for node, future in futures.items()}


def workers(
    nodes: Iterable[str], work: Callable[[str], None], limit: int, name: str
) -> list[threading.Thread]:
    """Daemon threads (not started) that run work(node) for each distinct node in order, at
    most `limit` at once. work must not raise: it records its own failure (the caller joins
    with a timeout and may leave a hung node behind)."""
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    order = list(dict.fromkeys(nodes))
    for node in order:
        todo.put(node)

    def worker() -> None:
        while True:
            try:
                node = todo.get_nowait()
            except queue.Empty:
                return
            work(node)

    count = max(1, min(limit, len(order)))
    return [threading.Thread(target=worker, name=f"{name}-{i}", daemon=True) for i in range(count)]
