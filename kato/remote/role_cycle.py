"""The node side of "change a role, then wait until it is healthy" in ONE call: a standalone
program (standard library only) the node agent runs as `python3 role_cycle.py`, reading its
request as JSON on stdin, so the core gets one answer where it used to send each command and
then poll the node's health over SSH.

Request (every key optional):
    commands [{"argv": [...], "timeout": seconds}, ...]   run in order; the first that fails
                                                          stops the rest
    roles    {role: {"units": [...], "health": {...}}}     as node_facts.py's `roles`: polled
                                                          once every command ran, until each
                                                          is healthy or its health timeout
                                                          (counted from then) has passed
    expect   {"units": [...], "active": true|false}       what the caller journaled before it
                                                          sent this: whether every unit is
                                                          active. Checked before the first
                                                          command; when it no longer holds,
                                                          nothing runs (see `unexpected`)
Before each command (and each health poll) it checks that kato is still there (its parent is
the same, its output still read): a kato killed mid-way leaves a role it stopped stopped, with
the command then running to its end, as when kato ran each command itself.

Answer (one JSON document on stdout):
    ran      how many commands ran (the failed one included)
    failed   null, or {"index", "status", "error": the last line it wrote on stderr}
    seconds  each command's seconds, in order
    health   {role: null when healthy, else what is wrong} as last polled ({} when not polled)
    late     null, or the first role (in request order) still unhealthy at its deadline
    unexpected  only when `expect` did not hold: {unit: state} as found (nothing ran)

The polls start sooner and back off more gently than kato/engine/health.py's from the core
(0.02 s, growing by a quarter each time to 0.5 s, against 0.05 s doubling): a poll here is a
local probe, not a round trip, and a restarted role is often healthy within a tenth of a
second (the reference filesystem role 0.05-0.07 s after `systemctl start` returns), which the
core's schedule would see only at 0.15 s. In the wait's first second, an HTTP or TCP check
is also tried alone every 5 ms between two polls, and the next poll comes as soon as it
passes (between_polls): the reference filesystem role listens 0.065-0.09 s after its start,
which the polls alone saw up to a backoff step (0.03-0.04 s) later.

`role_cycle.py --wait` is the same call started ahead of its time (kato/engine/standby.py): it
loads what the health probes need, then waits for its request as ONE line on stdin and answers
it as above. So when kato's rolling reaches the node, its change costs that line and the
answer, not an SSH session, a python3 start and the probes' imports. End of input before a
whole line (kato cancelled it, was killed, or its connection closed) starts nothing: the
program exits at once, writing nothing.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import Any

FIRST_POLL = 0.02
GROWTH = 1.25  # gentler than the core's doubling: a poll here costs no round trip
POLL = 0.5
QUICK_POLL = 0.005  # between polls: the HTTP/TCP checks alone (between_polls) ...
QUICK_FOR = 1.0  # ... for the wait's first second (a slow role is not hammered)
ERROR_KEEP = 1 << 16
GONE = "kato went away (killed, or its connection lost): nothing more was started"


def node_facts() -> Any:
    """kato/remote/node_facts.py (its health probes): shipped beside this program on a node, a
    module of kato here. Imported only when a wait needs it (it costs tens of milliseconds)."""
    try:
        return importlib.import_module("node_facts")
    except ImportError:
        return importlib.import_module("kato.remote.node_facts")


def caller_gone(parent: int) -> bool:
    """Whether kato went away (killed, its connection lost): this program was handed to another
    parent, or nobody reads its output any more. Then nothing more is started: a role a killed
    kato stopped stays stopped, as the journal says, for the next run to find."""
    if os.getppid() != parent:
        return True
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (OSError, ValueError):
        return False


def run_commands(commands: list[dict[str, Any]], parent: int) -> dict[str, Any]:
    """Run each command in order; stop at the first that fails or outlives its timeout, and
    before the next one when the caller is gone. A start that systemd refused for its start
    rate limit is tried once more after resetting it (see rate_limited)."""
    seconds: list[float] = []
    for index, command in enumerate(commands):
        if caller_gone(parent):
            failed = {"index": index, "status": 125, "error": GONE, "stderr": GONE}
            return {"ran": index + 1, "failed": failed, "seconds": [*seconds, 0.0]}
        started = time.monotonic()
        status, said = run_one(command)
        limited = rate_limited(command["argv"]) if status != 0 else []
        if limited:
            subprocess.run(("systemctl", "reset-failed", "--", *limited), timeout=60, check=False)
            status, said = run_one(command)
        seconds.append(round(time.monotonic() - started, 3))
        if status != 0:
            lines = said.strip().splitlines()
            error = lines[-1] if lines else f"exit {status}"
            failed = {"index": index, "status": status, "error": error, "stderr": said}
            return {"ran": index + 1, "failed": failed, "seconds": seconds}
    return {"ran": len(commands), "failed": None, "seconds": seconds}


def run_one(command: dict[str, Any]) -> tuple[int, str]:
    """Run one command: its exit status and what it said on stderr (its end)."""
    try:
        done = subprocess.run(
            command["argv"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=float(command.get("timeout", 600)),
        )
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {command.get('timeout', 600)}s"
    except OSError as exc:
        return 127, str(exc)
    return done.returncode, done.stderr[-ERROR_KEEP:].decode(errors="replace")


STARTS = ("start", "restart", "try-restart", "reload-or-restart")


def rate_limited(argv: list[str]) -> list[str]:
    """The units of a failed `systemctl start|restart [--] UNIT...` that systemd refused for
    its start rate limit (Result=start-limit-hit: five starts in ten seconds, by default).
    That limit stops a crash loop; kato's starts are an operator's, one per change, and an
    import or a restart run soon after another (or the put-back of a failed one) must not
    leave the role down for it, so such a start is tried once more after `reset-failed`, as
    systemd's own message advises."""
    if len(argv) < 3 or os.path.basename(argv[0]) != "systemctl" or argv[1] not in STARTS:
        return []
    hit = []
    for unit in (a for a in argv[2:] if a != "--"):
        shown = subprocess.run(
            ("systemctl", "show", "--property=Result", "--value", "--", unit),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if shown.stdout.strip() == "start-limit-hit":
            hit.append(unit)
    return hit


def wait_healthy(roles: dict[str, Any], parent: int, sleep: Any = time.sleep) -> dict[str, Any]:
    """Poll every role's units and health check until all are healthy, or a role still is not
    at its own deadline (its health timeout from now), or the caller is gone. Between two
    polls, the checks alone are tried every QUICK_POLL (see between_polls)."""
    started, pause = time.monotonic(), FIRST_POLL
    while True:
        _, health = node_facts().role_facts(roles)
        wrong = [r for r in roles if health.get(r) is not None]
        if not wrong or caller_gone(parent):
            return {"health": health, "late": wrong[0] if wrong else None}
        now = time.monotonic()
        late = [r for r in wrong if now >= started + float(roles[r]["health"].get("timeout", 30))]
        if late:
            return {"health": health, "late": late[0]}
        quick = now - started < QUICK_FOR
        between_polls([roles[r].get("health") or {} for r in wrong], pause, quick, sleep)
        pause = min(POLL, pause * GROWTH)


def between_polls(
    checks: list[dict[str, Any]], pause: float, quick: bool, sleep: Any = time.sleep
) -> None:
    """Wait `pause` seconds, or less: when `quick` (the wait's first QUICK_FOR seconds, where a
    restarted role usually answers) and every check still failing is an HTTP or TCP one, try
    them alone every QUICK_POLL (a refused connection costs about a millisecond, where a
    poll's `systemctl is-active` costs a fork and several) and end the wait once they all
    pass, so the next poll (units and checks, seen together: what healthy means) comes as soon
    as the role answers, not up to a backoff step later. A command check waits the pause out:
    running it is no cheaper than the poll."""
    if not quick or not all(c.get("http") or c.get("tcp") for c in checks):
        sleep(pause)
        return
    end = time.monotonic() + pause
    while (left := end - time.monotonic()) > 0:
        sleep(min(QUICK_POLL, left))
        if all(node_facts().probe(c) is None for c in checks):
            return


def warm_up() -> threading.Thread:
    """Import what the health probes need (node_facts, urllib, a thread pool: tens of
    milliseconds of a node's python3) while the commands run, not after them."""

    def load() -> None:
        node_facts()
        for name in ("urllib.request", "urllib.error", "concurrent.futures"):
            importlib.import_module(name)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    return thread


def unexpected(expect: dict[str, Any] | None) -> dict[str, str] | None:
    """The units' states when they are not as the caller expects (all active or not), else
    None. The caller decided what to run (and journaled it) from an earlier look: a role
    started or stopped since then by someone else is answered, never acted on blindly."""
    if not expect:
        return None
    states = node_facts().unit_states(list(expect.get("units") or []))
    active = all(state == "active" for state in states.values())
    return None if active == bool(expect.get("active")) else states


def cycle(request: dict[str, Any], parent: int) -> dict[str, Any]:
    if request.get("roles"):
        warm_up()
    changed = unexpected(request.get("expect"))
    if changed is not None:
        return {"ran": 0, "failed": None, "seconds": [], "health": {}, "late": None,
                "unexpected": changed}  # fmt: skip
    answer = run_commands(list(request.get("commands") or []), parent)
    answer.update(health={}, late=None)
    if answer["failed"] is None and request.get("roles"):
        answer.update(wait_healthy(request["roles"], parent))
    return answer


def waiting(parent: int) -> int:
    """--wait: everything loaded first, then one request line; none (end of input): nothing."""
    warm_up().join()
    line = sys.stdin.readline()
    if not line.endswith("\n") or caller_gone(parent):
        return 0
    sys.stdout.write(json.dumps(cycle(json.loads(line), parent)) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if argv == ["--wait"]:
        return waiting(os.getppid())
    request = json.loads(sys.stdin.read() or "{}")
    sys.stdout.write(json.dumps(cycle(request, os.getppid())) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
