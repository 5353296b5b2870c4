"""The operation journal: JSON Lines on the core node (/var/log/kato/journal.jsonl).

One line per event: an operation begins, each step's result, the operation ends. Secrets in
argv are masked before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from kato.core_link import FLUSH, CoreLink
from kato.errors import KatoError
from kato.remote import layout, safe_write
from kato.transport.base import Transport
from kato.transport.pool import Connections

JOURNAL_PATH = layout.JOURNAL
FORMAT = 1
SECRET_OPTION = re.compile(r"\A--?[\w-]*(pass|secret|token|key)[\w-]*\Z", re.IGNORECASE)
# DOTALL and \Z: a value with a newline in it is a secret all the same
SECRET_ASSIGNMENT = re.compile(
    r"\A([\w.-]*(pass|secret|token|key)[\w.-]*)=.*\Z", re.IGNORECASE | re.DOTALL
)


def mask(argv: Sequence[str]) -> list[str]:
    """argv with the values of secret-looking options and assignments replaced by ***."""
    masked: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            masked.append("***")
            hide_next = False
        elif "=" in arg and arg.startswith("-") and SECRET_OPTION.match(arg.split("=", 1)[0]):
            masked.append(arg.split("=", 1)[0] + "=***")
        elif SECRET_OPTION.match(arg):
            masked.append(arg)
            hide_next = True
        elif SECRET_ASSIGNMENT.match(arg):
            masked.append(SECRET_ASSIGNMENT.sub(r"\1=***", arg))
        else:
            masked.append(arg)
    return masked


def entry(operation: str, event: str, **fields: Any) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "operation": operation,
        "event": event,
        **fields,
    }


class Journal:
    """Appends entries to the journal on the core node.

    `write` appends at once (one command; on disk when it returns). `add` costs no round trip:
    the lines go down one open append stream to the core node, which writes and fsyncs each
    line as it arrives: the operation's own program there (`link`, kato/core_link.py) while it
    lives, else safe_write's `append-lines`, opened on the first `add` and ended by `flush`.
    `flush` returns once every line added is on disk. A kato killed mid-way leaves
    every line up to its last flush, and in practice every line it had added until a few
    milliseconds before; `detach` ends the stream for good and hands back any lines it could
    not write, for the operation's last call (the lock's release) to write."""

    def __init__(
        self, conns: Connections, core: str, patience: float = 120.0, link: CoreLink | None = None
    ) -> None:
        self.conns = conns
        self.core = core
        self.patience = patience
        # the operation's program on the core node, when it has one: the stream is then its
        # input, and a flush one request there (no session, no python3 of its own)
        self.link = link
        self._one_at_a_time = threading.Lock()
        self._state = threading.Condition()
        self._lines: list[bytes] = []  # added, not yet known to be on disk
        self._given = 0  # how many of them the open stream has been handed
        self._ending = False  # a flush asked the open stream to end
        self._streaming = False  # the stream's thread runs
        self._failure: KatoError | None = None

    def write(self, *entries: dict[str, Any]) -> None:
        """Append entries now, after every line added before: a rollout's workers all journal
        at once, over the one connection to the core node, whose sshd allows ten sessions."""
        self.flush()
        with self._one_at_a_time:
            self._append(lines(*entries))

    def add(self, *entries: dict[str, Any]) -> None:
        """Append entries through the open stream, without waiting for the core node."""
        with self._state:
            self._lines += [lines(e) for e in entries]
            if not self._streaming:
                self._streaming = True
                threading.Thread(target=self._stream, name="kato-journal", daemon=True).start()
            self._state.notify_all()

    def flush(self) -> None:
        """Return once every line added is on disk; raise why when the core node refused
        them or did not answer (the lines are kept, and tried again by the next stream)."""
        with self._state:
            self._ending = True
            self._state.notify_all()
            while self._streaming:
                self._state.wait()
            self._ending = False
            failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def detach(self) -> bytes:
        """End the stream; the lines it could not write (b"" when every line is on disk)."""
        with contextlib.suppress(KatoError):
            self.flush()
        with self._state:
            left, self._lines = b"".join(self._lines), []
        return left

    def _append(self, data: bytes) -> None:
        """Append lines, waiting for a rebooting core node rather than losing them."""
        # never through a link planted at the journal or in /var/log/kato
        argv, stdin = safe_write.append_argv(JOURNAL_PATH), safe_write.prelude() + data
        self.conns.call(self.core, lambda t: t.run(argv, stdin=stdin, timeout=30), self.patience)

    def _stream(self) -> None:
        """The stream's thread: the operation's program while it lives, else one command on the
        core node while lines keep coming; after a failure (or the program's end) every line not
        known written is sent again (a line may then appear twice)."""
        while True:
            failure: KatoError | None = None
            try:
                if self.link is not None and not self._through_link(self.link):
                    self.link = None  # it broke: the same lines again, down a stream of their own
                    continue
                if self.link is None:
                    failure = self._through_stream()
            except KatoError as exc:
                failure = exc
            except Exception as exc:  # noqa: BLE001 - a flush waiting on this thread must learn it
                failure = KatoError(f"the journal stream to {self.core} failed: {exc}")
            with self._state:
                if failure is None:
                    del self._lines[: self._given]
                self._given = 0
                if failure is not None or not self._lines:
                    self._failure = failure or self._failure
                    self._streaming = False
                    self._state.notify_all()
                    return

    def _through_link(self, link: CoreLink) -> bool:
        """Lines down the program's input until a flush asks, then its answer; False when the
        program broke (nothing it was given is known written). A journal it refused raises,
        and the lines go by a stream of their own from then on, as before the program."""
        feed = _Feed(self, prelude=b"")
        while chunk := feed.read(1):
            if not link.send(chunk):
                return False
        answer = link.ask(FLUSH)
        if answer is None:
            return False
        if answer.get("error"):
            # the program writes no journal line after one failed (the end lines of its release
            # included): ended here, the lock's release goes by its own call, which writes them
            self.link = None
            link.close()
            raise _refused(self.core, str(answer["error"]))
        return True

    def _through_stream(self) -> KatoError | None:
        argv = safe_write.append_lines_argv(JOURNAL_PATH)
        done = self.conns.call(
            self.core,
            lambda t: t.stream_in(argv, _Feed(self)),  # type: ignore[arg-type]
            self.patience,
        )
        return None if done.ok else _refused(self.core, done.error_line)


def _refused(core: str, why: str) -> KatoError:
    return KatoError(
        f"the journal on {core} could not be written: {why}",
        hint="fix the journal's path on the core node, then run again",
    )


class _Feed:
    """The open stream's stdin: safe_write's program, then each line as it is added, until a
    flush asks for the end."""

    def __init__(self, journal: Journal, prelude: bytes | None = None) -> None:
        self.journal = journal
        self.prelude = safe_write.prelude() if prelude is None else prelude
        with journal._state:
            journal._given = 0  # a stream tried again starts from the first unwritten line

    def read(self, size: int = -1) -> bytes:
        """The next lines as they come (b"" at the end); with no size, all until the end."""
        if size >= 0:
            return self._next()
        parts = []
        while part := self._next():
            parts.append(part)
        return b"".join(parts)

    def _next(self) -> bytes:
        if self.prelude:
            head, self.prelude = self.prelude, b""
            return head
        j = self.journal
        with j._state:
            while j._given == len(j._lines) and not j._ending:
                j._state.wait()
            chunk = b"".join(j._lines[j._given :])
            j._given = len(j._lines)
            return chunk


def lines(*entries: dict[str, Any]) -> bytes:
    """Entries as journal lines (JSON, keys sorted, one a line)."""
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode()


def read(core: Transport, limit: int) -> list[dict[str, Any]]:
    """The last `limit` entries (lines that do not parse are skipped, not fatal)."""
    done = core.run(
        ("sh", "-c", 'test -f "$1" && tail -n "$2" "$1" || true', "sh", JOURNAL_PATH, str(limit)),
        timeout=30,
    )
    entries = []
    for line in done.stdout.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries
