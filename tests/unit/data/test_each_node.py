"""kato/data/each_node.py: one piece of work per node, at most --parallel at once, the first
failure raised."""

from __future__ import annotations

import threading

import pytest

from kato.data.each_node import each_node, workers
from tests.unit.data.local_agent import Concurrency


def test_the_nodes_run_at_once_each_once() -> None:
    barrier = threading.Barrier(3, timeout=10)  # passes only if all three wait at the same time
    seen: list[str] = []

    def work(node: str) -> str:
        seen.append(node)
        barrier.wait()
        return node.upper()

    assert each_node(["n1", "n2", "n1", "n3"], work, 10) == {"n1": "N1", "n2": "N2", "n3": "N3"}
    assert sorted(seen) == ["n1", "n2", "n3"]


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_at_most_limit_nodes_are_asked_at_once(limit: int) -> None:
    nodes = [f"n{i}" for i in range(5)]
    concurrency = Concurrency(limit, total=len(nodes))

    def work(node: str) -> str:
        with concurrency:
            return node

    assert each_node(nodes, work, limit) == {n: n for n in nodes}
    assert not concurrency.over and concurrency.peak == limit


@pytest.mark.parametrize("limit", [1, 2])
def test_workers_take_every_node_once_in_order_at_most_limit_at_once(limit: int) -> None:
    nodes = ["n1", "n2", "n1", "n3", "n4"]
    concurrency = Concurrency(limit, total=4)
    started: list[str] = []

    def work(node: str) -> None:
        with concurrency:
            started.append(node)

    threads = workers(nodes, work, limit, "test")
    assert len(threads) == limit and all(t.daemon for t in threads)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(started) == ["n1", "n2", "n3", "n4"]
    assert not concurrency.over and concurrency.peak == limit
    if limit == 1:
        assert started == ["n1", "n2", "n3", "n4"]


def test_the_first_failure_in_the_nodes_order_is_raised_after_all_ended() -> None:
    ended: list[str] = []

    def work(node: str) -> None:
        ended.append(node)
        if node != "n1":
            raise RuntimeError(node)

    with pytest.raises(RuntimeError, match="n2"):
        each_node(["n1", "n2", "n3"], work, 2)
    assert sorted(ended) == ["n1", "n2", "n3"]
