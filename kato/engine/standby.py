"""A node's role cycle started ahead of its turn: `role_cycle.py --wait` runs on the node while
the rollout is still busy elsewhere (its SSH session open, python3 started, the health probes'
modules loaded) and waits for its request; the node's turn then costs one line down that
channel and one answer back, where engine/cycle.py's call costs a new session, a python3 start
and those imports, all inside the rolling (measured: docs/development.md, "Patch figures").

The request goes only when the caller says so, after its own fence check: until then the node
has changed nothing. A standby never used is cancelled (its input ends): the program exits
starting nothing, as it does when kato dies or its connection closes. A standby that gave no
answer (its program could not start, or died) is no answer at all: the caller makes the
ordinary call instead, so a restart may run twice (harmless) but is never skipped. A request
that must not run twice (an import's switch) is made again only when it never went down the
channel: released to the standby is not sent (its channel may have died while it waited).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Sequence

from kato.engine.cycle import PROGRAM, SLACK, Command, Cycled, Expect, limit, request
from kato.errors import NodeUnreachable, RemoteCommandFailed
from kato.remote.agent import AGENT
from kato.roles import Role
from kato.transport.base import CommandResult, Transport
from kato.transport.pool import Connections

WAIT = "--wait"
UNANSWERED = (
    "the request was sent to the node's waiting program, but the connection failed before "
    "its answer came: the node may have run some of the commands"
)
UNANSWERED_HINT = "what the node did is unknown: check it (kato status) before going on"


class _Held:
    """The program's stdin: nothing until the request is released (or the standby cancelled),
    then that line and the end of input."""

    def __init__(self) -> None:
        self._lines: queue.Queue[bytes] = queue.Queue(maxsize=1)
        self._ended = False
        self.taken = False  # the transport took the line (to send it)
        self.asked_again = False  # ... and asked for more: it had sent the whole line

    def release(self, line: bytes) -> bool:
        """Hand over `line` (b"": cancel); False when something already was."""
        try:
            self._lines.put_nowait(line)
        except queue.Full:
            return False
        return True

    def read(self, size: int = -1) -> bytes:
        if self._ended:
            self.asked_again = self.taken
            return b""
        self._ended = True
        line = self._lines.get()
        self.taken = bool(line)
        return line


class Standby:
    """role_cycle.py waiting on one node for one request: `commands`, then `roles` healthy
    (or, given to cycle(), the commands and roles the caller decided on at its turn: at most
    as long as those given here, which set how long the program may wait)."""

    def __init__(
        self, transport: Transport, commands: Sequence[Command], roles: Sequence[Role]
    ) -> None:
        self.node = transport.node
        self.commands, self.roles = tuple(commands), tuple(roles)
        self._stdin = _Held()
        self._result: CommandResult | None = None
        self._finished = threading.Event()
        idle = limit(commands, roles) + SLACK
        argv = AGENT.argv(PROGRAM, WAIT)

        def run() -> None:
            try:
                self._result = transport.stream_in(argv, self._stdin, idle_timeout=idle)  # type: ignore[arg-type]
            except Exception:  # the channel failed: no answer, so the caller makes the call
                self._result = None
            finally:
                self._finished.set()

        threading.Thread(target=run, name=f"kato-standby-{self.node}", daemon=True).start()

    def cycle(
        self,
        commands: Sequence[Command] | None = None,
        roles: Sequence[Role] | None = None,
        expect: Expect | None = None,
        *,
        twice_harmless: bool = True,
    ) -> Cycled | None:
        """Send the request (the caller has fenced) and wait for the answer; None when the
        program gave none, which the caller must then ask for with an ordinary call.
        `commands`, `roles`: instead of those given at the start; `expect`: engine/cycle.py's.
        Not `twice_harmless` (commands that must not run again, an import's switch): None only
        when the request never went down the channel (the program had ended, or the channel
        failed before it could take the request: nothing reached the node); an answer missing
        after it went (the program died, the connection failed) raises as the ordinary call
        would, saying the node may have run some of the commands."""
        commands = self.commands if commands is None else tuple(commands)
        roles = self.roles if roles is None else tuple(roles)
        line = json.dumps(request(commands, roles, expect)).encode() + b"\n"
        self._stdin.release(line)
        self._finished.wait()
        done = self._result
        if self._stdin.taken and done is not None and done.ok and done.stdout.strip():
            return Cycled.of(commands, json.loads(done.stdout))
        # the transport took the line and sent it whole: it returned (having fed its input to
        # the end), or it failed after asking for more input
        went = self._stdin.taken and (done is not None or self._stdin.asked_again)
        if twice_harmless or not went:
            return None
        if done is None:
            raise NodeUnreachable(self.node, "command", UNANSWERED, hint=UNANSWERED_HINT)
        raise RemoteCommandFailed(self.node, done.argv[:3], done.status, done.stderr)

    def cancel(self, wait: float = 0.0) -> None:
        """End the program's input unsent: it exits starting nothing. `wait` seconds at most
        for it to be gone."""
        self._stdin.release(b"")
        self._finished.wait(wait)


def fence_ahead(conns: Connections) -> None:
    """Check the cluster lock now, on a thread of its own, for the next node's turn: the lock
    lets a check that began at most FENCE_REUSE (0.5 s) before a command answer it, so the
    turn that follows within that time finds its check done instead of waiting for a python3
    on the core node. A failure here is not lost: a lost lock stays lost (the next fence
    raises it) and a check that did not finish is made again by the next fence."""

    def check() -> None:
        try:
            if conns.fence is not None:
                conns.fence()
        except Exception:  # noqa: BLE001, S110 (the next fence sees it: see above)
            pass

    threading.Thread(target=check, name="kato-fence-ahead", daemon=True).start()
