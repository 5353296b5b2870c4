"""The cluster lock's record on the core node, and an operation's one program there.

kato/lock.py runs this source with `python3 -c` on the core node (standard library only):

- `LOCK OP ARG [JOURNAL]`: one read-modify-write of the lock under an exclusive flock (acquire,
  heartbeat, fence, break, release, status), its answer printed as one JSON line. With JOURNAL,
  stdin carries safe_write's program (its length, a newline, the source), then the journal
  lines written in the same call: the begin entry (acquire) or the last lines (release).
- `LOCK link ARG JOURNAL`: the operation's program for its whole run, so taking the lock, the
  journal's stream and releasing the lock cost one session and one python3 start, not three.
  stdin: safe_write's program, the begin entry (one line), then requests, one a line:
  a journal line (`{...}`) is appended and fsynced as it arrives; `flush` is answered once every
  line before it is on disk; `release` releases the lock (the lines before it are its end),
  answers and exits. The acquire's answer comes first; a lock not acquired ends the program.
  End of input without `release` (kato was killed, its connection broke) leaves the lock to
  expire with its heartbeat, exactly as a dead one-shot holder does.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

Begin = Callable[[str | None], None]  # writes the begin line, given the lock taken over
Last = Callable[[], None]  # writes the last lines


def _under(name: str, flags: int, mode: int = 0o600) -> int:
    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


def prepare(path: str) -> None:
    """The lock's directory, made root's alone; refuse one that is not (a planted link)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    home = os.lstat(os.path.dirname(path))
    if (home.st_mode & 0o170000) != 0o040000 or home.st_uid != os.geteuid() or home.st_mode & 0o022:
        sys.exit(f"refused: {os.path.dirname(path)} is not a directory of root's alone")


def _write(path: str, record: dict[str, Any]) -> None:
    tmp = f"{path}.{os.urandom(8).hex()}.tmp"
    with os.fdopen(_under(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w") as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def update(
    path: str, op: str, arg: dict[str, Any], begin: Begin | None = None, last: Last | None = None
) -> dict[str, Any]:
    """One read-modify-write under the flock; `begin(taken_over_id)` writes the acquire's
    journal line (its failure refuses the lock), `last()` the release's (its failure is told,
    the lock released all the same). Returns the answer."""
    with os.fdopen(_under(path + ".guard", os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        now = time.time()
        try:
            with os.fdopen(_under(path, os.O_RDONLY)) as f:
                cur = json.load(f)
        except FileNotFoundError:
            cur = None
        except ValueError:
            cur = {"id": "corrupt", "heartbeat": 0, "ttl": 0}
        return _decide(path, op, arg, cur, now, begin, last)


def _alive(record: dict[str, Any] | None, now: float) -> bool:
    return record is not None and now - record.get("heartbeat", 0) <= record.get("ttl", 0)


def _decide(
    path: str,
    op: str,
    arg: dict[str, Any],
    cur: Any,
    now: float,
    begin: Begin | None,
    last: Last | None,
) -> dict[str, Any]:
    mine = cur is not None and cur.get("id") == arg.get("id")
    out = {"now": now, "lock": cur, "alive": _alive(cur, now)}
    if op == "acquire":
        seen = bool(((cur or {}).get("broken") or {}).get("seen"))
        if cur is not None and not mine and _alive(cur, now) and not seen:
            out["result"] = "held"
            return out
        out["result"] = "acquired"
        if begin is not None:  # the operation's begin line, in the same call
            try:
                begin(cur.get("id") if cur is not None and not mine else None)
            except Exception as exc:
                out["result"], out["error"] = "refused", str(exc)
                return out
        arg["started"] = cur["started"] if mine else now
        arg["heartbeat"] = now
        _write(path, arg)
        out["lock"], out["taken_over"] = arg, None if mine else cur
    elif op in ("heartbeat", "fence"):
        if not mine:
            out["result"] = "lost"
        elif cur.get("broken"):
            if op == "fence":
                cur["broken"]["seen"] = now
            else:
                cur["heartbeat"] = now
            _write(path, cur)
            out["result"] = "broken"
        else:
            if op == "heartbeat":
                cur["heartbeat"] = now
                _write(path, cur)
            out["result"] = "ok"
    elif op == "break":
        if not mine:
            out["result"] = "absent"
        elif arg.get("gone") or not _alive(cur, now) or (cur.get("broken") or {}).get("seen"):
            os.unlink(path)
            out["result"] = "released"
        else:
            cur["broken"] = {"by": arg["by"], "at": now}
            _write(path, cur)
            out["result"] = "marked"
    elif op == "release":
        if last is not None:  # the operation's last lines (its end), in the same call
            try:
                last()
            except Exception as exc:
                out["error"] = str(exc)
        if mine:
            os.unlink(path)
        out["result"] = "released" if mine else "absent"
    else:
        out["result"] = "status"
    return out


def safe_writer(stdin: BinaryIO) -> dict[str, Any]:
    """safe_write's program from stdin (its length, a newline, the source), as a namespace."""
    n = int(stdin.readline())
    writer = {"__name__": "kato-safe-write"}
    exec(compile(stdin.read(n), "kato-safe-write", "exec"), writer)
    return writer


def _begin_writer(append: Callable[[str, bytes], None], journal: str, line: bytes) -> Begin:
    def begin(taken_over: str | None) -> None:
        entry = json.loads(line)
        if taken_over is not None:
            entry["took_over_lock"] = taken_over
        append(journal, (json.dumps(entry, sort_keys=True) + "\n").encode())

    return begin


def one_shot(
    path: str, op: str, arg: dict[str, Any], journal: str | None, stdin: BinaryIO
) -> dict[str, Any]:
    if journal is None:
        return update(path, op, arg)
    append, data = safe_writer(stdin)["append_line"], stdin.read()

    def last() -> None:
        append(journal, data)

    return update(path, op, arg, _begin_writer(append, journal, data), last)


def _answer(stdout: BinaryIO, answer: dict[str, Any]) -> None:
    stdout.write((json.dumps(answer) + "\n").encode())
    stdout.flush()


def serve(
    path: str, record: dict[str, Any], journal: str, stdin: BinaryIO, stdout: BinaryIO
) -> None:
    """The `link` program: see the module's docstring."""
    writer = safe_writer(stdin)
    begin = _begin_writer(writer["append_line"], journal, stdin.readline())
    answer = update(path, "acquire", record, begin)
    _answer(stdout, answer)
    if answer["result"] != "acquired":
        return
    state: dict[str, Any] = {"error": None}

    def control(request: bytes) -> bool:
        if request == b"flush\n":
            _answer(stdout, {"result": "flushed", "error": state["error"]})
            return False
        if request == b"release\n":
            _answer(stdout, {**update(path, "release", record), "error": state["error"]})
            return True
        _answer(stdout, {"result": "unknown", "error": f"unknown request {request[:40]!r}"})
        return False

    def journal_lines() -> Iterator[bytes]:
        # a line is yielded, then written and fsynced before the next is read: so a flush that
        # follows it is answered only once it is on disk
        for request in iter(stdin.readline, b""):
            if request.startswith(b"{") and request.endswith(b"\n"):
                yield request
            elif control(request):
                return

    try:
        writer["append_lines"](journal, journal_lines())
    except Exception as exc:  # noqa: BLE001 - told at the next flush and the release
        state["error"] = str(exc)
        for request in iter(stdin.readline, b""):
            if not request.startswith(b"{") and control(request):
                return


def main(argv: list[str], stdin: BinaryIO, stdout: BinaryIO) -> None:
    path, op, arg = argv[0], argv[1], json.loads(argv[2])
    journal = argv[3] if len(argv) > 3 else None
    prepare(path)
    if op == "link" and journal is not None:
        serve(path, arg, journal, stdin, stdout)
    else:
        _answer(stdout, one_shot(path, op, arg, journal, stdin))


if __name__ == "__main__":
    main(sys.argv[1:], sys.stdin.buffer, sys.stdout.buffer)
