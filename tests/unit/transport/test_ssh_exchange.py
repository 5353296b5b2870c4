"""A command's channel: a connection that died is not the command's exit status."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from kato.errors import NodeOutputTooLarge, NodeUnreachable
from kato.transport.ssh_exchange import Collected, close_channel, drain, settle


class Transport:
    def __init__(self, active: bool) -> None:
        self.active = active

    def is_active(self) -> bool:
        return self.active


class Channel:
    """A channel whose command ended with `status`, its connection alive or not."""

    def __init__(self, status: int, active: bool) -> None:
        self.status, self.transport = status, Transport(active)
        self.eof_received, self.closed = True, False

    def recv_ready(self) -> bool:
        return False

    recv_stderr_ready = recv_ready

    def exit_status_ready(self) -> bool:
        return True

    def recv_exit_status(self) -> int:
        return self.status

    def get_transport(self) -> Transport:
        return self.transport

    def close(self) -> None:
        self.closed = True


def drained(channel: Any) -> int:
    return drain(channel, "node3", ("sleep", "30"), print, bytearray(), 60, False,
                 lambda: None, lambda _: None)  # fmt: skip


def test_a_dead_connection_is_a_lost_node_not_exit_minus_one() -> None:
    with pytest.raises(NodeUnreachable) as lost:
        drained(Channel(-1, active=False))
    assert lost.value.phase == "transfer"
    assert "the connection was lost while `sleep 30` ran" in lost.value.detail
    assert "ssh.keepalive" in (lost.value.hint or "")


def test_a_status_on_a_live_connection_is_the_commands() -> None:
    assert drained(Channel(-1, active=True)) == -1  # e.g. killed by a signal
    assert drained(Channel(3, active=False)) == 3


class Busy(Channel):
    """A command that still writes output for a while after its input ends."""

    def __init__(self, chunks: int) -> None:
        super().__init__(0, active=True)
        self.chunks, self.input_ended, self.read = chunks, False, 0

    def shutdown_write(self) -> None:
        self.input_ended = True

    def recv_ready(self) -> bool:
        return self.chunks > 0

    def recv(self, size: int) -> bytes:
        self.chunks -= 1
        self.read += 1
        return b"x"

    def exit_status_ready(self) -> bool:
        return self.input_ended and self.chunks == 0


def test_a_failed_input_ends_the_command_and_waits_for_it_before_closing() -> None:
    channel = Busy(chunks=5)
    settle(channel, seconds=10)  # type: ignore[arg-type]
    assert channel.input_ended and channel.read == 5 and channel.closed


def test_waiting_for_a_command_that_never_exits_is_bounded() -> None:
    channel = Busy(chunks=0)
    channel.exit_status_ready = lambda: False  # type: ignore[method-assign]
    settle(channel, seconds=0.2)  # type: ignore[arg-type]
    assert channel.closed


def test_collected_output_is_refused_past_its_limit_naming_node_and_limit() -> None:
    collected = Collected("node2", ("node-facts",), limit=10)
    collected.write(b"12345")
    collected.write(b"67890")  # exactly the limit is kept
    with pytest.raises(NodeOutputTooLarge) as refused:
        collected.write(b"x")
    assert refused.value.node == "node2" and "node-facts" in refused.value.message
    assert collected.text() == "1234567890"


def test_a_channel_closed_while_data_arrives_closes_its_select_pipe_only_after_that_write() -> None:
    """paramiko's transport thread writes a byte to a channel's select() pipe holding the
    buffer's lock (BufferedPipe.feed) as data arrives; a close mid-stream (a refused answer)
    must wait for that write, never close the descriptor under it: EBADF (or EPIPE) in that
    thread ended the whole connection."""
    import paramiko

    channel = paramiko.Channel(7)
    channel.fileno()  # the pipe drain's select() waits on
    pipe = channel._pipe  # type: ignore[attr-defined]
    arriving, go_on = threading.Event(), threading.Event()
    failed: list[OSError] = []

    def feed() -> None:  # the transport's thread, inside BufferedPipe.feed
        with channel.in_buffer._lock:  # type: ignore[attr-defined]
            arriving.set()
            go_on.wait(5)
            try:
                os.write(pipe._wfd, b"*")
            except OSError as exc:
                failed.append(exc)

    feeder = threading.Thread(target=feed)
    feeder.start()
    assert arriving.wait(5)
    closer = threading.Thread(target=close_channel, args=(channel,))
    closer.start()
    closer.join(0.5)
    assert closer.is_alive() and not pipe._closed  # waits for the write in flight
    go_on.set()
    feeder.join(5)
    closer.join(5)
    assert not failed and pipe._closed and channel._pipe is None  # type: ignore[attr-defined]
    assert channel.closed or not channel.active
