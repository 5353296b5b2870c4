"""kato check's judgement and the Prometheus textfile, from snapshots made by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from kato import check, prometheus
from kato.errors import UsageError
from kato.monitor import DirUse, NodeUse, Snapshot
from kato.status import ClusterStatus, DataDir, NodeStatus, RoleStatus
from kato.transport.fanout import NodeFailure

NOW = 1_800_000_000.0


def snap(
    *,
    health: str = "ok",
    disk: float = 40.0,
    load: float = 0.5,
    backup: float | None = NOW - 3600,
    overdue: float | None = None,
    down: bool = False,
) -> Snapshot:
    node = NodeStatus(
        "node1",
        "10.0.0.1",
        "1.0.0",
        (RoleStatus("router", {"kato-router.service": "active"}, health),),
        (DataDir("router", "logs", "/var/lib/kato/logs", True, 1 << 30),),
    )
    use = NodeUse(load, 2, (DirUse("router", "logs", "/var/lib/kato/logs", True, disk, 3.0),))
    failed = (NodeFailure("node2", "connect", "no answer within 5s", 5),) if down else ()
    status = ClusterStatus("prod", (node,), failed, None)
    return Snapshot("prod", NOW, status, {"node1": use}, backup, overdue, True)


def test_a_healthy_cluster_is_ok_with_perfdata() -> None:
    verdict = check.judge(snap())
    assert verdict.state == check.OK and verdict.problems == ()
    assert verdict.line.startswith("KATO OK - 1 nodes, 1 roles healthy | 'nodes_up'=1;;;0;1 ")
    assert "'node1_load1'=0.25;2;4;0" in verdict.perfdata
    assert "'node1_router_logs_disk'=40.0%;80;90;0;100" in verdict.perfdata
    assert "'backup_age'=3600s;93600;180000;0" in verdict.perfdata


@pytest.mark.parametrize(
    ("changes", "state", "problem"),
    [
        ({"disk": 85.0}, check.WARNING, "node1 /var/lib/kato/logs disk 85% used"),
        ({"disk": 95.0}, check.CRITICAL, "node1 /var/lib/kato/logs disk 95% used"),
        ({"load": 9.0}, check.CRITICAL, "node1 load 4.50 per CPU"),
        ({"health": "failing: not running"}, check.CRITICAL, "node1 router failing: not running"),
        ({"down": True}, check.CRITICAL, "node2 unreachable (connect: no answer within 5s)"),
        ({"backup": None}, check.WARNING, "no scheduled export has succeeded"),
        ({"backup": NOW - 30 * 3600}, check.WARNING, "the last backup is 30.0h old"),
        ({"overdue": 120.0}, check.WARNING, "a lock was left 120s past its TTL"),
    ],
)
def test_each_problem_sets_its_state(changes: dict[str, object], state: int, problem: str) -> None:
    verdict = check.judge(snap(**changes))  # type: ignore[arg-type]
    assert verdict.state == state
    assert verdict.problems[0].startswith(problem)
    assert verdict.line.startswith(f"KATO {check.NAMES[state]} - {problem}")


def test_thresholds_parse_and_refuse_nonsense() -> None:
    warn = check.thresholds("disk=70, backup=13h", check.WARN, "--warn")
    assert (warn.disk, warn.backup, warn.load) == (70.0, 13 * 3600.0, 2.0)
    assert check.judge(snap(disk=75.0), warn).state == check.WARNING
    for bad in ("disk=lots", "cpu=3", "backup=soon", "load=nan"):
        with pytest.raises(UsageError):
            check.thresholds(bad, check.WARN, "--warn")


def test_the_textfile_has_help_type_and_escaped_labels(tmp_path: Path) -> None:
    text = prometheus.render(snap(down=True, health="failing: x"))
    assert '# TYPE kato_node_up gauge\nkato_node_up{cluster="prod",node="node2"} 0\n' in text
    assert 'kato_role_healthy{cluster="prod",node="node1",role="router"} 0' in text
    assert 'kato_datadir_used_ratio{cluster="prod",node="node1",role="router",dir="logs",' in text
    assert 'kato_backup_last_success_timestamp_seconds{cluster="prod"} 1799996400\n' in text
    assert 'kato_status_timestamp_seconds{cluster="prod"} 1800000000\n' in text
    target = tmp_path / "kato.prom"
    prometheus.write(target, text)
    assert target.read_text() == text and list(tmp_path.iterdir()) == [target]
    with pytest.raises(UsageError, match="only files ending in .prom"):
        prometheus.write(tmp_path / "kato.txt", text)
