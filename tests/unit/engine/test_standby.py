"""A node's role cycle waiting for its turn (engine/standby.py): nothing reaches the node's
program before the turn's request; a cancel ends its input unsent; no answer means the caller
makes the ordinary call; the lock checked ahead on a thread of its own."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, BinaryIO

import pytest

from kato.engine.cycle import Command
from kato.engine.standby import Standby, fence_ahead
from kato.errors import LockLost, NodeUnreachable, RemoteCommandFailed
from kato.transport.base import CommandResult

ANSWER = '{"ran": 1, "failed": null, "seconds": [0.01], "health": {}, "late": null}\n'


class Node:
    """A transport whose stream_in reads its source the way the SSH transport does (until its
    end), answering `stdout` once it has it; `fed` is what the node's program was sent."""

    node = "node1"

    def __init__(self, stdout: str = ANSWER, status: int = 0) -> None:
        self.stdout, self.status = stdout, status
        self.fed = b""
        self.reading = threading.Event()

    def stream_in(self, argv: Sequence[str], source: BinaryIO, **_: Any) -> CommandResult:
        self.reading.set()
        while chunk := source.read(1 << 20):
            self.fed += chunk
        out = self.stdout if self.fed else ""  # --wait: no request, no answer
        return CommandResult(self.node, tuple(argv), self.status, out, "", 0.01)


def test_the_request_reaches_the_node_only_at_its_turn_and_the_answer_comes_back() -> None:
    node = Node()
    standby = Standby(node, [Command(("systemctl", "restart", "--", "web"))], ())  # type: ignore[arg-type]
    assert node.reading.wait(5) and node.fed == b""  # waiting there, sent nothing
    done = standby.cycle()
    assert done is not None and done.ran == 1 and done.failed is None
    assert node.fed.endswith(b"\n") and b'"systemctl", "restart"' in node.fed


def test_a_cancelled_standby_sends_nothing_and_a_failed_one_gives_no_answer() -> None:
    node = Node()
    standby = Standby(node, [Command(("true",))], ())  # type: ignore[arg-type]
    standby.cancel(wait=5)
    assert node.fed == b"" and standby.cycle() is None  # the caller then makes the call
    dead = Node(stdout="", status=2)
    assert Standby(dead, [Command(("true",))], ()).cycle() is None  # type: ignore[arg-type]


def test_the_lock_is_checked_ahead_on_its_own_thread_and_a_loss_is_left_to_the_next_fence() -> None:
    checked: list[str] = []
    done = threading.Event()

    def fence() -> None:
        checked.append(threading.current_thread().name)
        done.set()
        raise LockLost("op1", None, "another operation took it")

    fence_ahead(SimpleNamespace(fence=fence))  # type: ignore[arg-type]
    assert done.wait(5) and checked == ["kato-fence-ahead"]  # raised there, never here


class Dead(Node):
    """A standby whose program died: at once (before any request), or once it read one."""

    def __init__(self, at_once: bool) -> None:
        super().__init__(stdout="", status=1)
        self.at_once = at_once

    def stream_in(self, argv: Sequence[str], source: BinaryIO, **_: Any) -> CommandResult:
        if not self.at_once:
            self.fed = source.read()  # the request reached it, then it died
        return CommandResult(self.node, tuple(argv), self.status, "", "Traceback: boom", 0.01)


def test_a_standby_that_died_after_its_request_is_not_replayed_when_that_is_not_harmless() -> None:
    dead_early = Dead(at_once=True)
    early = Standby(dead_early, [Command(("true",))], ())  # type: ignore[arg-type]
    early._finished.wait(5)  # it ended before its request: nothing ran, the call may be made
    assert early.cycle(twice_harmless=False) is None
    dead_late = Dead(at_once=False)
    late = Standby(dead_late, [Command(("true",))], ())  # type: ignore[arg-type]
    with pytest.raises(RemoteCommandFailed, match="boom"):
        late.cycle(twice_harmless=False)  # it may have run some: raised, never made again
    assert dead_late.fed  # the request went
    again = Standby(Dead(at_once=False), [Command(("true",))], ())  # type: ignore[arg-type]
    assert again.cycle() is None  # a restart (twice harmless): the caller makes the call


class Broken(Node):
    """A standby whose channel failed while its request waited, found as the SSH transport
    finds it: on sending the request (`sent` False), or after it sent it whole and asked for
    more input, waiting for the answer (`sent` True)."""

    def __init__(self, sent: bool) -> None:
        super().__init__()
        self.sent = sent

    def stream_in(self, argv: Sequence[str], source: BinaryIO, **_: Any) -> CommandResult:
        line = source.read(1 << 20)  # blocks until the turn's request is released
        if self.sent:
            self.fed = line
            source.read(1 << 20)  # the end of input: the request went whole
        raise NodeUnreachable(self.node, "command", "the connection failed: Socket is closed")


def test_a_request_the_dead_channel_never_sent_is_left_to_the_ordinary_call() -> None:
    broken = Broken(sent=False)
    standby = Standby(broken, [Command(("true",))], ())  # type: ignore[arg-type]
    assert standby.cycle(twice_harmless=False) is None  # nothing reached the node: call it
    assert broken.fed == b""


def test_a_request_sent_whole_and_never_answered_says_the_node_may_have_run_it() -> None:
    broken = Broken(sent=True)
    standby = Standby(broken, [Command(("true",))], ())  # type: ignore[arg-type]
    with pytest.raises(NodeUnreachable) as caught:
        standby.cycle(twice_harmless=False)  # not made again: it may have run
    assert "was sent" in str(caught.value) and "may have run some" in str(caught.value)
    assert caught.value.hint is not None and "kato status" in caught.value.hint
    assert broken.fed.endswith(b"\n")
