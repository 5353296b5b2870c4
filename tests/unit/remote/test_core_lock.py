"""The operation's program on the core node (kato/remote/core_lock.py), run as kato runs it
(`python3 -c SOURCE LOCK link RECORD JOURNAL`, safe_write's program then requests on stdin),
on a temporary directory standing for /run/kato and /var/log/kato."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kato.lock import SCRIPT
from kato.remote import safe_write

RECORD = {"format": 1, "id": "a1b2c3", "owner": "root@core", "command": "kato x", "ttl": 60.0}


class Program:
    """The program started for one operation, fed line by line."""

    def __init__(self, lock: Path, journal: Path, record: dict[str, object] = RECORD) -> None:
        argv = (sys.executable, "-c", SCRIPT, str(lock), "link", json.dumps(record), str(journal))
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.send(safe_write.prelude() + line({"event": "begin", "operation": record["id"]}))

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def answer(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        said = self.proc.stdout.readline()
        assert said, "the program ended without an answer"
        result: dict[str, object] = json.loads(said)
        return result

    def ask(self, request: bytes) -> dict[str, object]:
        self.send(request)
        return self.answer()

    def end_input(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=30)


def line(entry: dict[str, object]) -> bytes:
    return json.dumps(entry, sort_keys=True).encode() + b"\n"


def events(journal: Path) -> list[object]:
    return [json.loads(text).get("event") for text in journal.read_text().splitlines()]


@pytest.fixture
def paths(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    (tmp_path / "run").mkdir(mode=0o700)
    yield tmp_path / "run" / "lock", tmp_path / "log" / "journal.jsonl"


def test_one_program_acquires_streams_flushes_and_releases(paths: tuple[Path, Path]) -> None:
    lock, journal = paths
    program = Program(lock, journal)
    answer = program.answer()
    assert answer["result"] == "acquired" and answer["taken_over"] is None
    assert json.loads(lock.read_text())["id"] == "a1b2c3"
    program.send(line({"event": "step", "n": 1}) + line({"event": "step", "n": 2}))
    assert program.ask(b"flush\n") == {"result": "flushed", "error": None}
    assert events(journal) == ["begin", "step", "step"]
    released = program.ask(line({"event": "end"}) + b"release\n")
    assert released["result"] == "released" and released["error"] is None
    assert program.end_input() == 0
    assert not lock.exists() and events(journal) == ["begin", "step", "step", "end"]


def test_a_line_is_on_disk_as_it_arrives_without_a_flush(paths: tuple[Path, Path]) -> None:
    lock, journal = paths
    program = Program(lock, journal)
    program.answer()
    program.send(line({"event": "step", "n": 1}))
    deadline = time.monotonic() + 10
    while events(journal) != ["begin", "step"]:
        assert time.monotonic() < deadline, journal.read_text()
        time.sleep(0.01)
    program.proc.kill()


def test_the_end_of_input_without_release_keeps_the_lock_and_every_line(
    paths: tuple[Path, Path],
) -> None:
    lock, journal = paths
    program = Program(lock, journal)
    program.answer()
    program.send(line({"event": "step"}) + b'{"event": "torn')  # kato killed mid-line
    assert program.end_input() == 0
    assert json.loads(lock.read_text())["id"] == "a1b2c3"  # left to expire with its heartbeat
    assert events(journal) == ["begin", "step"]  # the torn line is not written


def test_a_lock_held_by_a_live_operation_is_answered_held_and_changes_nothing(
    paths: tuple[Path, Path],
) -> None:
    lock, journal = paths
    other = {**RECORD, "id": "other1", "heartbeat": time.time(), "started": time.time()}
    lock.write_text(json.dumps(other))
    program = Program(lock, journal)
    answer = program.answer()
    assert answer["result"] == "held" and answer["lock"] == other
    assert program.end_input() == 0
    assert json.loads(lock.read_text()) == other and not journal.exists()


def test_an_expired_lock_is_taken_over_and_the_begin_line_says_whose(
    paths: tuple[Path, Path],
) -> None:
    lock, journal = paths
    dead = {**RECORD, "id": "dead01", "heartbeat": time.time() - 600, "started": 0}
    lock.write_text(json.dumps(dead))
    program = Program(lock, journal)
    answer = program.answer()
    assert answer["result"] == "acquired" and answer["taken_over"] == dead
    program.end_input()
    assert json.loads(journal.read_text())["took_over_lock"] == "dead01"


def test_a_link_planted_at_the_journal_refuses_the_lock(paths: tuple[Path, Path]) -> None:
    lock, journal = paths
    journal.parent.mkdir(mode=0o750)
    canary = journal.parent.parent / "canary"
    canary.write_text("keep\n")
    journal.symlink_to(canary)
    program = Program(lock, journal)
    answer = program.answer()
    assert answer["result"] == "refused" and "symbolic link" in str(answer["error"])
    program.end_input()
    assert not lock.exists() and canary.read_text() == "keep\n"


def test_a_link_planted_at_the_lock_dir_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "run").symlink_to(elsewhere)
    program = Program(tmp_path / "run" / "lock", tmp_path / "journal.jsonl")
    assert program.end_input() == 1
    assert list(elsewhere.iterdir()) == []


def test_an_unknown_request_is_answered_as_such_and_the_lock_still_released(
    paths: tuple[Path, Path],
) -> None:
    lock, journal = paths
    program = Program(lock, journal)
    program.answer()
    program.send(b"\xff" * 10 + b"\n")  # neither a line nor a request
    assert "unknown request" in str(program.answer()["error"])
    released = program.ask(b"release\n")
    assert released["result"] == "released" and not lock.exists()


@pytest.mark.parametrize("op", ["acquire", "release"])
def test_the_one_shot_calls_write_their_journal_lines_in_the_same_call(
    paths: tuple[Path, Path], op: str
) -> None:
    lock, journal = paths
    if op == "release":
        lock.write_text(json.dumps({**RECORD, "heartbeat": time.time(), "started": 0}))
    argv = (sys.executable, "-c", SCRIPT, str(lock), op, json.dumps(RECORD), str(journal))
    stdin = safe_write.prelude() + line({"event": "begin" if op == "acquire" else "end"})
    done = subprocess.run(argv, input=stdin, capture_output=True, timeout=60, check=True)
    answer = json.loads(done.stdout)
    assert answer["result"] == ("acquired" if op == "acquire" else "released")
    assert events(journal) == ["begin" if op == "acquire" else "end"]
    assert lock.exists() == (op == "acquire")
