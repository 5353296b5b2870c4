"""kato/data/each_node.py: one piece of work per node, all at once, the first failure raised."""

from __future__ import annotations

import threading

import pytest

from kato.data.each_node import each_node


def test_the_nodes_run_at_once_each_once() -> None:
    barrier = threading.Barrier(3, timeout=10)  # passes only if all three wait at the same time
    seen: list[str] = []

    def work(node: str) -> str:
        seen.append(node)
        barrier.wait()
        return node.upper()

    assert each_node(["n1", "n2", "n1", "n3"], work) == {"n1": "N1", "n2": "N2", "n3": "N3"}
    assert sorted(seen) == ["n1", "n2", "n3"]


def test_the_first_failure_in_the_nodes_order_is_raised_after_all_ended() -> None:
    ended: list[str] = []

    def work(node: str) -> None:
        ended.append(node)
        if node != "n1":
            raise RuntimeError(node)

    with pytest.raises(RuntimeError, match="n2"):
        each_node(["n1", "n2", "n3"], work)
    assert sorted(ended) == ["n1", "n2", "n3"]
