"""role_cycle.py as the node runs it (python3 -S beside node_facts.py, the request on stdin):
commands in order up to the first failure, then the roles' health polled until each is healthy
or past its own timeout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PROGRAM = Path(__file__).parents[3] / "kato" / "remote" / "role_cycle.py"


def cycled(request: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        (sys.executable, "-S", str(PROGRAM)),
        input=json.dumps(request).encode(),
        capture_output=True,
        check=True,
        timeout=60,
        env=env,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def role(flag: Path, timeout: float) -> dict[str, Any]:
    """A role with no units whose health check passes once `flag` exists."""
    return {"units": [], "health": {"timeout": timeout, "command": ["test", "-e", str(flag)]}}


def test_commands_run_in_order_and_the_first_failure_stops_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "log"
    commands = [
        {"argv": ["sh", "-c", f"echo one >>{log}"], "timeout": 10},
        {"argv": ["sh", "-c", "echo first >&2; echo it broke >&2; exit 3"], "timeout": 10},
        {"argv": ["sh", "-c", f"echo three >>{log}"], "timeout": 10},
    ]
    answer = cycled({"commands": commands, "roles": {"web": role(tmp_path / "x", 1)}})
    assert log.read_text() == "one\n"
    assert answer["ran"] == 2 and len(answer["seconds"]) == 2
    assert answer["failed"]["index"] == 1 and answer["failed"]["status"] == 3
    assert answer["failed"]["error"] == "it broke"
    assert answer["health"] == {} and answer["late"] is None  # no wait after a failure


def test_a_command_past_its_timeout_fails_as_timed_out() -> None:
    answer = cycled({"commands": [{"argv": ["sleep", "5"], "timeout": 0.3}]})
    assert answer["failed"]["status"] == 124 and "timed out" in answer["failed"]["error"]


def test_the_wait_ends_as_soon_as_the_role_is_healthy(tmp_path: Path) -> None:
    flag = tmp_path / "up"
    later = threading.Timer(0.4, flag.touch)
    later.start()
    started = time.monotonic()
    answer = cycled({"commands": [{"argv": ["true"]}], "roles": {"web": role(flag, 20)}})
    later.join()
    assert answer["failed"] is None and answer["late"] is None
    assert answer["health"] == {"web": None}
    assert time.monotonic() - started < 5  # polled again soon, not after the 20 s deadline


def test_a_role_unhealthy_at_its_deadline_is_late_with_what_is_wrong(tmp_path: Path) -> None:
    ok, never = tmp_path / "ok", tmp_path / "never"
    ok.touch()
    roles = {"db": role(ok, 5), "web": role(never, 0.5)}
    started = time.monotonic()
    answer = cycled({"roles": roles})
    assert answer["late"] == "web" and answer["health"]["db"] is None
    assert answer["health"]["web"]  # what failed, e.g. "exit 1"
    assert 0.5 <= time.monotonic() - started < 5


def test_once_nobody_reads_its_answer_it_starts_nothing_more(tmp_path: Path) -> None:
    """kato killed while the first command runs: that command ends, the next never starts
    (a role a killed import stopped stays stopped, as its journal says)."""
    marker = tmp_path / "started"
    commands = [{"argv": ["sleep", "0.5"]}, {"argv": ["touch", str(marker)]}]
    process = subprocess.Popen(
        (sys.executable, "-S", str(PROGRAM)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps({"commands": commands}).encode())
    process.stdin.close()
    process.stdout.close()  # the reader is gone, as when kato's connection drops
    process.wait(timeout=30)
    assert not marker.exists()


def waiting(stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        (sys.executable, "-S", str(PROGRAM), "--wait"),
        input=stdin,
        capture_output=True,
        check=True,
        timeout=60,
    )


def test_waiting_it_answers_the_one_request_line_it_is_sent(tmp_path: Path) -> None:
    log, flag = tmp_path / "log", tmp_path / "up"
    flag.touch()
    commands = [{"argv": ["sh", "-c", f"echo ran >>{log}"], "timeout": 10}]
    line = json.dumps({"commands": commands, "roles": {"web": role(flag, 5)}}).encode()
    answer = json.loads(waiting(line + b"\n").stdout)
    assert log.read_text() == "ran\n"
    assert answer["ran"] == 1 and answer["failed"] is None and answer["late"] is None
    assert answer["health"] == {"web": None}


def test_waiting_it_starts_nothing_when_its_input_ends_before_a_whole_line(tmp_path: Path) -> None:
    log = tmp_path / "log"
    line = json.dumps({"commands": [{"argv": ["sh", "-c", f"echo ran >>{log}"]}]}).encode()
    for stdin in (b"", line):  # cancelled, or cut off mid-line (kato killed, connection lost)
        done = waiting(stdin)
        assert done.stdout == b"" and not log.exists()


def systemd_saying(tmp_path: Path, state: str) -> dict[str, str]:
    """An environment whose `systemctl is-active` answers `state` for every unit."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(f"#!/bin/sh\nshift 2\nfor u; do echo {state}; done\n")
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_it_runs_nothing_when_the_units_are_not_as_the_caller_journaled(tmp_path: Path) -> None:
    log = tmp_path / "log"
    env = systemd_saying(tmp_path, "inactive")
    request = {"commands": [{"argv": ["sh", "-c", f"echo ran >>{log}"]}]}
    expect = {"units": ["a.service", "b.service"], "active": True}
    answer = cycled({**request, "expect": expect}, env)
    assert answer["ran"] == 0 and not log.exists()
    assert answer["unexpected"] == {"a.service": "inactive", "b.service": "inactive"}
    answer = cycled({**request, "expect": {**expect, "active": False}}, env)  # as it is
    assert answer["ran"] == 1 and "unexpected" not in answer and log.read_text() == "ran\n"


def test_between_polls_ends_as_soon_as_a_tcp_check_passes_and_only_while_quick() -> None:
    from kato.remote.role_cycle import between_polls

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    check = {"tcp": ["127.0.0.1", port], "timeout": 2}
    later = threading.Timer(0.15, server.listen)  # the role starts listening
    later.start()
    started = time.monotonic()
    between_polls([check], 3.0, quick=True)
    waited = time.monotonic() - started
    later.join()
    server.close()
    assert 0.15 <= waited < 1.5  # the check passed: the pause was cut short
    slept: list[float] = []
    between_polls([check], 0.4, quick=False, sleep=slept.append)  # past the first second
    between_polls([{"command": ["true"]}], 0.3, quick=True, sleep=slept.append)  # a command
    assert slept == [0.4, 0.3]  # neither is tried alone: the pause is waited out


def systemd_rate_limited(tmp_path: Path) -> dict[str, str]:
    """An environment whose systemctl refuses the first start of a unit for its start rate
    limit (Result=start-limit-hit, as systemd says it) until `reset-failed`; it logs each call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(
        f"""#!/bin/sh
echo "$*" >>{tmp_path}/calls
case "$1" in
start|restart)
    [ -e {tmp_path}/reset ] && exit 0
    echo "Job for $3 failed because start of the service was attempted too often." >&2
    exit 1 ;;
show) [ -e {tmp_path}/reset ] && echo success || echo start-limit-hit ;;
reset-failed) touch {tmp_path}/reset ;;
esac
"""
    )
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_start_refused_for_the_start_rate_limit_is_reset_and_tried_once_more(
    tmp_path: Path,
) -> None:
    env = systemd_rate_limited(tmp_path)
    start = {"argv": ["systemctl", "start", "--", "kato-web.service"], "timeout": 10}
    answer = cycled({"commands": [start]}, env)
    assert answer["ran"] == 1 and answer["failed"] is None
    assert (tmp_path / "calls").read_text().splitlines() == [
        "start -- kato-web.service",
        "show --property=Result --value -- kato-web.service",
        "reset-failed -- kato-web.service",
        "start -- kato-web.service",
    ]


def test_any_other_failure_is_not_retried(tmp_path: Path) -> None:
    env = systemd_rate_limited(tmp_path)
    (tmp_path / "bin" / "systemctl").write_text(
        f'#!/bin/sh\necho "$*" >>{tmp_path}/calls\n[ "$1" = show ] && echo exit-code\nexit 1\n'
    )
    start = {"argv": ["systemctl", "start", "--", "kato-web.service"], "timeout": 10}
    stop = {"argv": ["systemctl", "stop", "--", "kato-web.service"], "timeout": 10}
    assert cycled({"commands": [start]}, env)["failed"]["index"] == 0
    assert cycled({"commands": [stop]}, env)["failed"]["index"] == 0
    assert (tmp_path / "calls").read_text().splitlines() == [
        "start -- kato-web.service",
        "show --property=Result --value -- kato-web.service",  # not the rate limit: no reset
        "stop -- kato-web.service",  # not a start: not even asked
    ]
