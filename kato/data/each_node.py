"""One piece of work per node, all nodes at once, for the data commands' preparation (where
each data dir lives, its size, free space, the node agent): a cluster of N nodes waits one
round trip, not N. The first failure (in the nodes' order) is raised once all have ended."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
LIMIT = 32  # connections opened at once


def each_node(nodes: Iterable[str], work: Callable[[str], T]) -> dict[str, T]:
    """{node: work(node)} for each distinct node, run in parallel."""
    order = list(dict.fromkeys(nodes))
    if len(order) <= 1:
        return {node: work(node) for node in order}
    with ThreadPoolExecutor(max_workers=min(LIMIT, len(order))) as pool:
        futures = {node: pool.submit(work, node) for node in order}
    return {node: future.result() for node, future in futures.items()}
