"""The journal's open stream: lines added cost no command of their own, a flush puts them all on
disk, a refused stream says why and keeps the lines for the operation's last call."""

from __future__ import annotations

import pytest

from kato.connect import connections
from kato.errors import KatoError
from kato.journal import JOURNAL_PATH, Journal, entry
from kato.operation import operation
from tests.fakes import FakeCluster, FakeNode


def journal_commands(fake: FakeCluster) -> list[tuple[str, ...]]:
    return [argv for argv in fake.ran("node1") if argv[-1] == JOURNAL_PATH]


def test_forty_lines_added_then_flushed_take_one_command_in_order() -> None:
    fake = FakeCluster(["node1"])
    with connections(fake.cluster, fake.factory) as conns:
        journal = Journal(conns, "node1")
        for i in range(40):
            journal.add(entry("op", "step", n=i))
        journal.flush()
        assert [e["n"] for e in fake.journal] == list(range(40))
        assert len(journal_commands(fake)) == 1
        assert journal.detach() == b""


def test_a_refused_stream_raises_at_the_flush_and_keeps_its_lines() -> None:
    fake = FakeCluster(["node1"])

    def refuse(node: FakeNode, argv: tuple[str, ...], stdin: bytes | None) -> object:
        if argv[-2:] == ("append-lines", JOURNAL_PATH):
            return 1, "", f"refused: {JOURNAL_PATH} is a symbolic link: refusing to write"
        return None

    fake.answers.append(refuse)  # type: ignore[arg-type]
    with connections(fake.cluster, fake.factory) as conns:
        journal = Journal(conns, "node1")
        journal.add(entry("op", "step", n=1), entry("op", "step", n=2))
        with pytest.raises(KatoError, match="is a symbolic link"):
            journal.flush()
        journal.flush()  # the failure is told once
        left = journal.detach()
    assert fake.journal == [] and left.count(b"\n") == 2 and b'"n": 2' in left


def test_an_operation_takes_the_lock_with_its_begin_and_releases_it_with_its_end() -> None:
    fake = FakeCluster(["node1", "node2"])
    with (
        connections(fake.cluster, fake.factory) as conns,
        operation(conns, "node1", ["kato", "x"]) as op,
    ):
        for node in ("node1", "node2", "node1"):
            op.step(node, "touch", ("touch", "/x"), "ok", 0.0)
    events = [e["event"] for e in fake.journal]
    assert events == ["begin", "step", "step", "step", "end"]
    assert fake.lock is None
    # the begin and the end ride on the lock's own calls: one stream for all the steps
    assert [argv[4] for argv in journal_commands(fake)] == ["acquire", JOURNAL_PATH, "release"]


def test_a_durable_step_is_on_disk_when_it_returns() -> None:
    fake = FakeCluster(["node1"])
    with (
        connections(fake.cluster, fake.factory) as conns,
        operation(conns, "node1", ["kato", "x"]) as op,
    ):
        op.step("node1", "stop web to switch its data", None, "was running", 0.0)
        op.step("node1", "stop web", None, "was running", 0.0, durable=True)
        assert [e.get("step") for e in fake.journal][1:] == [
            "stop web to switch its data",
            "stop web",
        ]


def test_a_stream_that_breaks_unexpectedly_fails_the_flush_instead_of_hanging_it() -> None:
    fake = FakeCluster(["node1"])

    def explode(node: FakeNode, argv: tuple[str, ...], stdin: bytes | None) -> object:
        if argv[-2:] == ("append-lines", JOURNAL_PATH):
            raise RuntimeError("the channel broke")
        return None

    fake.answers.append(explode)  # type: ignore[arg-type]
    with connections(fake.cluster, fake.factory) as conns:
        journal = Journal(conns, "node1", patience=0.0)
        journal.add(entry("op", "step", n=1))
        with pytest.raises(KatoError, match="the channel broke"):
            journal.flush()
        assert journal.detach().count(b"\n") == 1
