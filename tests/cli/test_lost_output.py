"""kato whose stdout or stderr goes away mid-command (its reader closed the pipe, or the
descriptor was closed from the start), each case in a fresh interpreter: the next write stops
the command as Ctrl-C does and kato exits 141 at once. Before kato.cli.streams, the thread that
wrote died on BrokenPipeError (or on sys.stdout being None) while the main thread waited on it.
"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import threading
import time

import pytest

from kato.cli.streams import LOST

# A command that talks as an export does: a worker thread writes progress (to the stream
# named by argv[1]) while the main thread waits for that worker for up to 120 s.
TALKER = """
import sys, threading, time
where, mode = sys.argv[1], sys.argv[2]
sys.argv = ["kato", "talk"]
from kato import output
from kato.cli import app as cli, errors

def talk() -> None:
    if mode == "binary":  # the archive on stdout, as `kato data export -` writes it
        with errors.reported():
            for i in range(120_000):
                sys.stdout.buffer.write(b"step %d\\n" % i + bytes(4096))
                sys.stdout.buffer.flush()
                time.sleep(0.001)
        output.info("finished every step")
        return
    if mode == "after":  # the command's result printed after its own handling, as `kato run`
        with errors.reported():
            pass
        for i in range(120_000):
            output.line(f"step {i}")
            time.sleep(0.001)
        output.info("finished every step")
        return
    with errors.reported():
        done = threading.Event()
        def chatter() -> None:
            for i in range(120_000):
                (output.line if where == "stdout" else output.info)(f"step {i}")
                time.sleep(0.001)
            done.set()
        threading.Thread(target=chatter, daemon=True).start()
        done.wait(120)
        output.info("finished every step")

cli.app.command("talk")(talk)
cli.main()
"""

DEADLINE = 20.0  # seconds; the old code waited the full 120 s


def run(where: str, how: str, mode: str = "thread") -> tuple[int, str, float]:
    """kato talking on `where`, whose reader leaves after the first line ("pipe") or which is
    closed before kato starts ("closed"): (exit code, the other stream, seconds it took)."""
    other = "stderr" if where == "stdout" else "stdout"
    fd = 1 if where == "stdout" else 2
    started = time.monotonic()
    process = subprocess.Popen(
        (sys.executable, "-c", TALKER, where, mode),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=(lambda: os.close(fd)) if how == "closed" else None,
    )
    talking, said = getattr(process, where), getattr(process, other)
    if how == "pipe":
        assert talking.readline().startswith(b"step 0")
        talking.close()  # the reader goes away mid-command
    try:
        code = process.wait(timeout=DEADLINE)
    finally:
        process.kill()
    return code, said.read().decode(), time.monotonic() - started


@pytest.mark.parametrize("how", ["pipe", "closed"])
@pytest.mark.parametrize("where", ["stdout", "stderr"])
def test_a_stream_going_away_interrupts_and_exits_141_promptly(where: str, how: str) -> None:
    code, said, took = run(where, how)
    assert code == LOST == 141, said
    assert took < DEADLINE
    assert "finished every step" not in said
    assert "Traceback" not in said
    if where == "stdout":  # stderr still has its reader: it says why, and the Ctrl-C error
        assert "warning: kato's stdout went away" in said, said
        assert "error: interrupted" in said, said


@pytest.mark.parametrize("where", ["stdout", "stderr"])
def test_a_hang_up_of_the_terminal_interrupts_and_exits_141(where: str) -> None:
    """SIGHUP (the ssh session closed) with `where` on a terminal: not death with the lock
    held (SIGHUP's default), but the Ctrl-C way out."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        (sys.executable, "-c", TALKER, where, "thread"),
        stdin=subprocess.DEVNULL,
        stdout=secondary if where == "stdout" else subprocess.PIPE,
        stderr=secondary if where == "stderr" else subprocess.PIPE,
    )
    os.close(secondary)
    try:
        with os.fdopen(primary, "rb", buffering=0) as terminal:
            assert b"step 0" in terminal.read(64)
            process.send_signal(signal.SIGHUP)
            code = process.wait(timeout=DEADLINE)
    finally:
        process.kill()
    assert code == LOST, code


def test_stderr_going_away_puts_nothing_on_stdout() -> None:
    """stdout carries data (an archive, a --json document): the notice never lands there."""
    code, said, _ = run("stderr", "pipe")
    assert (code, said) == (LOST, "")


def test_stdout_going_away_while_the_result_prints_exits_141() -> None:
    """The write that fails comes after the command's own Ctrl-C handling (a result table, as
    `kato run` prints it): still the Ctrl-C way out, with 141, not a failure's code."""
    code, said, _ = run("stdout", "pipe", "after")
    assert code == LOST, said
    assert "finished every step" not in said


def test_the_archive_on_stdout_going_away_stops_the_export_and_exits_141() -> None:
    """`kato data export -` writes binary to sys.stdout.buffer: its reader leaving must stop
    the command as Ctrl-C does (typer would otherwise turn the EPIPE into a silent exit 1)."""
    code, said, took = run("stdout", "pipe", "binary")
    assert code == LOST, said
    assert took < DEADLINE
    assert "warning: kato's stdout went away" in said, said
    assert "finished every step" not in said


def test_a_full_disk_under_stdout_is_an_error_not_a_lost_reader() -> None:
    """ENOSPC (`kato status --json > FILE` on a full disk) is not the reader leaving: the
    command fails on it, it is not taken for a Ctrl-C, and no exit 141."""
    with open("/dev/full", "wb") as full:
        process = subprocess.run(
            (sys.executable, "-c", TALKER, "stdout", "after"),
            stdin=subprocess.DEVNULL, stdout=full, stderr=subprocess.PIPE, timeout=DEADLINE,
        )  # fmt: skip
    said = process.stderr.decode()
    assert process.returncode not in (0, LOST), said
    assert "went away" not in said
    assert "No space left on device" in said, said


def test_a_hang_up_while_the_stream_is_being_given_up_does_not_deadlock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SIGHUP (or a nested write) that reaches the stream while the main thread is inside
    its own going-away (holding the module's lock) must not wait for itself."""
    from kato.cli import streams

    read, write = os.pipe()
    os.close(read)
    stream = streams.Guarded("stderr", write, os.fdopen(os.dup(write), "w"))
    monkeypatch.setattr(streams, "_went", [])
    monkeypatch.setattr(streams, "_interrupt", lambda: None)
    real = streams._to_devnull
    nested: list[bool] = []

    def devnull_with_a_hang_up(fd: int) -> None:
        real(fd)
        stream.hang_up()  # as the SIGHUP handler would, in the same thread
        nested.append(True)

    monkeypatch.setattr(streams, "_to_devnull", devnull_with_a_hang_up)
    done = threading.Event()

    def write_once() -> None:
        stream.write("x" * 100_000)
        done.set()

    threading.Thread(target=write_once, daemon=True).start()
    assert done.wait(DEADLINE), "the stream's going-away waited on itself"
    assert nested == [True] and stream.gone and streams._went == ["stderr"]
    os.close(write)
