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
