"""The conversation with a program on a node (ssh_link.SshLink), on a fake channel."""

from __future__ import annotations

from typing import Any

import pytest

from kato.transport.ssh_link import LinkBroken, SshLink


class LastWords:
    """A channel whose program answers one line and exits: the answer lands in the same
    instant as the end (paramiko's thread delivers both between kato's two looks)."""

    def __init__(self, answer: bytes) -> None:
        self.answer, self.ended, self.closed = answer, False, False

    @property
    def eof_received(self) -> bool:
        self.ended = True  # by the time kato looks at the end, the answer is there too
        return True

    def recv_ready(self) -> bool:
        return self.ended and bool(self.answer)

    def recv(self, size: int) -> bytes:
        said, self.answer = self.answer, b""
        return said

    def recv_stderr_ready(self) -> bool:
        return False

    def settimeout(self, seconds: float) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class Transport:
    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.liveness = self

    def open_channel(self, argv: Any) -> Any:
        return self.channel

    def heard(self) -> None:
        pass

    def check_heard(self, channel: Any) -> None:
        pass


def test_an_answer_that_comes_with_the_programs_end_is_read_not_lost() -> None:
    link = SshLink(Transport(LastWords(b'{"result": "released"}\n')), ["true"])  # type: ignore[arg-type]
    assert link.readline(timeout=5) == b'{"result": "released"}'


def test_an_end_without_an_answer_breaks_the_link() -> None:
    link = SshLink(Transport(LastWords(b"")), ["true"])  # type: ignore[arg-type]
    with pytest.raises(LinkBroken, match="the program ended"):
        link.readline(timeout=5)
