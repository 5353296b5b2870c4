"""An operation's one program on the core node, from kato's side: the lock, the journal's stream
and the release go through it, and when it dies mid-way every line and the release go by the
separate calls instead (the program itself: tests/unit/remote/test_core_lock.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from kato import core_link
from kato.connect import connections
from kato.errors import KatoError
from kato.journal import JOURNAL_PATH
from kato.lock import LOCK_PATH
from kato.operation import Operation, operation
from kato.transport.ssh_link import LinkBroken
from tests.fakes import FakeCluster


class FakeProgram:
    """core_lock.py's `link`, played on the fake cluster's lock and journal; kill() is kill -9
    of it (what it wrote stays, what comes after is lost, and the channel says so)."""

    def __init__(self, fake: FakeCluster, argv: Sequence[str]) -> None:
        self.fake = fake
        self.record = json.loads(argv[5])
        self.head = True
        self.dead = False
        self.answers: list[dict[str, object]] = []

    def send(self, data: bytes) -> None:
        if self.dead:
            raise LinkBroken("the program ended: killed")
        if self.head:  # safe_write's program, then the begin line
            self.head = False
            size, rest = data.split(b"\n", 1)
            out = self.fake._lock("acquire", self.record)
            if out["result"] == "acquired":
                self.fake.journal.append(json.loads(rest[int(size) :]))
            self.answers.append(out)
            return
        for request in data.splitlines():
            if request.startswith(b"{"):
                self.fake.journal.append(json.loads(request))
            elif request == b"flush":
                self.answers.append({"result": "flushed", "error": None})
            elif request == b"release":
                self.answers.append({**self.fake._lock("release", self.record), "error": None})

    def readline(self, timeout: float) -> bytes:
        if self.dead or not self.answers:
            raise LinkBroken("the program ended: killed")
        return json.dumps(self.answers.pop(0)).encode()

    def close(self) -> None:
        self.dead = True

    kill = close


@pytest.fixture
def programs(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeCluster, list[FakeProgram]]:
    fake = FakeCluster(["node1", "node2"])
    started: list[FakeProgram] = []

    def open_link(transport: object, argv: Sequence[str]) -> FakeProgram:
        started.append(FakeProgram(fake, argv))
        return started[-1]

    monkeypatch.setattr(core_link, "open_link", open_link)
    return fake, started


@contextmanager
def operation_on(fake: FakeCluster) -> Iterator[Operation]:
    """An operation whose core node is the fake cluster's node1."""
    with (
        connections(fake.cluster, fake.factory) as conns,
        operation(conns, "node1", ["kato", "x"]) as op,
    ):
        yield op


def separate_calls(fake: FakeCluster) -> list[str]:
    """The lock's one-shot calls and the journal's own streams the core node was asked for."""
    return [
        argv[4] if LOCK_PATH in argv else "stream"
        for argv in fake.ran("node1")
        if LOCK_PATH in argv or argv[-1] == JOURNAL_PATH
    ]


def test_an_operation_costs_one_program_on_the_core_node(
    programs: tuple[FakeCluster, list[FakeProgram]],
) -> None:
    fake, started = programs
    with operation_on(fake) as op:
        op.step("node2", "touch", ("touch", "/x"), "ok", 0.0)
        op.step("node1", "stop web", None, "was running", 0.0, durable=True)
        op.step("node2", "touch", ("touch", "/y"), "ok", 0.0)
    assert [e["event"] for e in fake.journal] == ["begin", "step", "step", "step", "end"]
    assert fake.lock is None and len(started) == 1 and started[0].dead
    assert separate_calls(fake) == []


def test_a_program_killed_mid_way_loses_no_line_and_the_lock_is_still_released(
    programs: tuple[FakeCluster, list[FakeProgram]],
) -> None:
    fake, started = programs
    with operation_on(fake) as op:
        op.step("node2", "one", None, "ok", 0.0, durable=True)
        started[0].kill()
        op.step("node2", "two", None, "ok", 0.0)
        op.step("node2", "three", None, "ok", 0.0, durable=True)
        assert fake.lock is not None  # the lock stayed taken
    assert [e.get("step") for e in fake.journal if e["event"] == "step"] == ["one", "two", "three"]
    assert fake.journal[-1]["event"] == "end" and fake.lock is None
    assert separate_calls(fake) == ["stream", "release"]


def test_a_program_that_never_answers_the_acquire_gives_way_to_the_one_shot_call(
    programs: tuple[FakeCluster, list[FakeProgram]], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, started = programs

    def dies(self: FakeProgram, timeout: float) -> bytes:
        self.kill()  # after taking the lock, before its answer left
        raise LinkBroken("the program ended: killed")

    monkeypatch.setattr(FakeProgram, "readline", dies)
    with operation_on(fake) as op:
        op.step("node2", "one", None, "ok", 0.0)
    assert fake.journal[-1]["event"] == "end" and fake.lock is None
    # the lock was ours already: the one-shot acquire takes it again, and the begin may be twice
    assert separate_calls(fake)[0] == "acquire" and separate_calls(fake)[-1] == "release"
    assert [e["event"] for e in fake.journal][-3:] == ["begin", "step", "end"]


def test_after_the_journal_refused_a_line_the_end_goes_by_the_release_call(
    programs: tuple[FakeCluster, list[FakeProgram]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The program writes no journal line after one failed (its release's end lines neither):
    the lock's release then goes by its own call, which writes them."""
    fake, started = programs
    full = False
    send = FakeProgram.send

    def refusing(self: FakeProgram, data: bytes) -> None:
        if not full:
            return send(self, data)
        for request in data.splitlines():  # lines dropped, as the real program does then
            if request == b"flush":
                self.answers.append({"result": "flushed", "error": "No space left on device"})
            elif request == b"release":
                self.answers.append({**self.fake._lock("release", self.record), "error": None})
        return None

    monkeypatch.setattr(FakeProgram, "send", refusing)
    with pytest.raises(KatoError, match="No space left on device"), operation_on(fake) as op:
        op.step("node2", "one", None, "ok", 0.0, durable=True)
        full = True  # /var/log fills up for a moment ...
        op.step("node2", "two", None, "ok", 0.0, durable=True)
    # ... and has room again when the operation ends: its last lines are written
    assert [e.get("step") for e in fake.journal if e["event"] == "step"] == ["one", "two"]
    assert fake.journal[-1]["event"] == "end" and fake.lock is None
    assert separate_calls(fake)[-1] == "release"
