"""kato's side of an operation's one program on the core node (kato/remote/core_lock.py's
`link`): it takes the lock, then stays as the journal's append stream, then releases the lock,
so a mutating command pays one session and one python3 start there instead of three.

Whatever breaks the conversation (the program killed, the channel or the connection gone, no
answer in time) leaves it dead for good: every caller then makes today's separate calls
instead (acquire again or reassert, safe_write's append stream, the release call), sending
again what was not answered, so a line may appear twice but is never lost, and a lock is
never left to a conversation nobody can finish.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from kato.transport.ssh_link import Link, LinkBroken, open_link

ANSWER_WITHIN = 30.0  # seconds, as for the lock's one-shot calls
FLUSH = b"flush\n"
RELEASE = b"release\n"


class CoreLink:
    """The open conversation; `alive` until it breaks or ends."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._guard = threading.Lock()  # one request (and its answer) at a time
        self.alive = True

    def send(self, data: bytes) -> bool:
        """Hand lines to the program; False when the conversation is (now) dead."""
        with self._guard:
            if not self.alive:
                return False
            try:
                self._link.send(data)
            except LinkBroken:
                self._end()
                return False
            return True

    def ask(self, request: bytes, timeout: float = ANSWER_WITHIN) -> dict[str, Any] | None:
        """Send a request and read its answer; None when the conversation broke (it is then
        dead: whether the request was done is unknown, so the caller does it again)."""
        with self._guard:
            if not self.alive:
                return None
            try:
                self._link.send(request)
                answer: dict[str, Any] = json.loads(self._link.readline(timeout))
            except (LinkBroken, ValueError):
                self._end()
                return None
            return answer

    def release(self, last: bytes) -> dict[str, Any] | None:
        """The last journal lines, then the release; the program's answer (None: broken)."""
        answer = self.ask(last + RELEASE)
        self.close()
        return answer

    def close(self) -> None:
        """End the conversation without releasing: the lock stays until its heartbeat expires."""
        with self._guard:
            self._end()

    def _end(self) -> None:
        if self.alive:
            self.alive = False
            self._link.close()


def start(transport: object, argv: Sequence[str], head: bytes) -> tuple[CoreLink, Any] | None:
    """Start the program (stdin: `head`) and read its first answer; None when the transport
    has no conversation or it broke before answering (the caller makes its one-shot call).
    NodeUnreachable when the session could not be opened, as for any command."""
    link = open_link(transport, argv)
    if link is None:
        return None
    linked = CoreLink(link)
    answer = linked.ask(head)
    return None if answer is None else (linked, answer)
