"""Planning `kato run`: batches and refusals."""

from __future__ import annotations

import pytest

from kato.config import NodeConfig
from kato.errors import UsageError
from kato.run import plan_run

NODES = [NodeConfig(f"n{i}", f"10.0.0.{i}", 22, ("dea",)) for i in range(1, 6)]


def test_serial_batches() -> None:
    plan = plan_run(NODES, ["uptime"], serial=2, wait_healthy=True)
    assert plan.batches == (("n1", "n2"), ("n3", "n4"), ("n5",))
    assert plan_run(NODES, ["uptime"], None, False).batches == (tuple(n.name for n in NODES),)


@pytest.mark.parametrize(
    ("nodes", "argv", "serial"), [(NODES, [], None), ([], ["uptime"], None), (NODES, ["uptime"], 0)]
)
def test_refusals(nodes: list[NodeConfig], argv: list[str], serial: int | None) -> None:
    with pytest.raises(UsageError):
        plan_run(nodes, argv, serial, False)
