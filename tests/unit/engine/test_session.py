"""The session on a fake cluster: connections reused, the lock and journal only once begun."""

from __future__ import annotations

import pytest

from kato.engine.session import session
from kato.errors import LockHeld
from kato.operation import operation
from tests.fakes import FakeCluster


def test_looking_takes_no_lock_and_writes_no_journal() -> None:
    fake = FakeCluster(["node1", "node2"])
    with session(fake.cluster, ["kato", "look"], factory=fake.factory) as s:
        s.transport("node2").run(("true",))
        s.transport("node2").run(("true",))
        assert not s.begun
    assert fake.opened == ["node2"] and fake.journal == [] and fake.lock is None


def test_begin_locks_and_journals_once_and_the_end_releases() -> None:
    fake = FakeCluster(["node1", "node2"])
    with session(fake.cluster, ["kato", "change", "--password", "x"], factory=fake.factory) as s:
        first = s.begin()
        assert s.begin() is first and fake.lock is not None
        assert fake.lock["command"] == "kato change --password ***"
    assert [e["event"] for e in fake.journal] == ["begin", "end"]
    assert fake.journal[-1]["result"] == "ok" and fake.lock is None


def test_a_failure_inside_is_journaled_as_failed() -> None:
    fake = FakeCluster(["node1"])
    with pytest.raises(RuntimeError), session(fake.cluster, ["kato"], factory=fake.factory) as s:
        s.begin()
        raise RuntimeError("boom")
    assert fake.journal[-1]["result"] == "failed" and fake.lock is None


def test_a_dry_run_never_locks_and_a_held_lock_is_refused() -> None:
    fake = FakeCluster(["node1"])
    with session(fake.cluster, ["kato"], dry_run=True, factory=fake.factory) as s:
        s.begin()
    assert fake.journal == [] and fake.lock is None
    fake.lock = {"id": "other", "owner": "someone", "command": "kato upgrade"}
    with (
        pytest.raises(LockHeld, match="locked by someone"),
        session(fake.cluster, ["kato"], factory=fake.factory) as s,
    ):
        s.begin()


def test_an_operation_inside_another_joins_it_and_the_lock_is_never_let_go() -> None:
    """An upgrade's export or import inside the upgrade: one lock, one journal, no gap."""
    fake = FakeCluster(["node1", "node2"])
    with session(fake.cluster, ["kato", "upgrade"], factory=fake.factory) as s:
        outer = s.begin()
        held = fake.lock
        with session(fake.cluster, ["kato", "export"], factory=fake.factory) as inner:
            assert inner.begin() is outer and fake.lock is held
            inner.op.step("node2", "export", None, "ok", 0.0)
        assert fake.lock is held  # the inner end released nothing
        with operation(s.conns, "node1", ["kato", "import"]) as joined:
            assert joined is outer
    assert [e["event"] for e in fake.journal] == ["begin", "step", "end"]
    assert {e["operation"] for e in fake.journal} == {outer.id} and fake.lock is None


def test_an_operation_after_another_ended_takes_the_lock_again() -> None:
    fake = FakeCluster(["node1"])
    with session(fake.cluster, ["kato", "a"], factory=fake.factory) as s:
        first = s.begin()
    with session(fake.cluster, ["kato", "b"], factory=fake.factory) as s:
        assert s.begin().id != first.id
    assert [e["event"] for e in fake.journal] == ["begin", "end", "begin", "end"]


def test_nodes_asking_at_once_share_their_lock_checks_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ten workers each fence before a command: the core node sees the checks one at a time
    (never ten sessions at once on its connection) and fewer than one per worker, while a
    worker asking after the reuse window gets a check of its own."""
    import threading
    import time

    from kato import lock

    nodes = [f"node{i}" for i in range(1, 11)]
    fake = FakeCluster(nodes)
    flying, most, checks = [0], [0], [0]
    guard = threading.Lock()

    def slow_fence(node: object, argv: tuple[str, ...], stdin: object) -> None:
        if "fence" in argv or argv == ("cat", "--", lock.LOCK_PATH):  # full or plain read
            with guard:
                flying[0] += 1
                checks[0] += 1
                most[0] = max(most[0], flying[0])
            time.sleep(0.05)  # a check on a loaded core node
            with guard:
                flying[0] -= 1
        return None

    fake.answers.append(slow_fence)
    with session(fake.cluster, ["kato", "change"], factory=fake.factory) as s:
        s.begin()
        start = threading.Barrier(len(nodes))

        def command(node: str) -> None:
            start.wait()
            s.transport(node).run(("true",))

        workers = [threading.Thread(target=command, args=(n,)) for n in nodes]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert most[0] == 1 and 1 <= checks[0] <= 2
        before = checks[0]
        s.transport("node1").run(("true",))  # within the reuse window: no check
        assert checks[0] == before
        monkeypatch.setattr(lock, "FENCE_REUSE", 0.0)
        s.transport("node1").run(("true",))  # asked after every check began: checked again
        assert checks[0] == before + 1
