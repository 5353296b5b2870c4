"""One node's relocation, as the stages of a rollout: *stage* copies while the roles run;
*change* stops only the roles using the data dir, copies the last changes, verifies both sides,
switches the recorded location and starts the roles; *verify* waits for their health; *undo*
puts the old location back. The record notes each phase, so a re-run knows where one ended."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from kato.errors import KatoError, NodeUnreachable
from kato.operation import Operation
from kato.progress import Progress
from kato.relocate.facts import run_program
from kato.relocate.targets import Target
from kato.remote.agent import AGENT
from kato.roles import Role, in_start_order
from kato.transport.base import CommandResult, Transport

RSYNC = ("rsync", "-aHAX", "--numeric-ids", "--sparse", "--delete")
COPY_TIMEOUT = 48 * 3600.0  # a big data dir copies for hours; the roles keep running meanwhile
VANISHED = 24  # rsync: some source files vanished while the roles ran (the delta catches up)
CACHE = "/var/lib/kato/staging/relocate"


class RelocationFailed(KatoError):
    """A step failed; what the hint says was done about it."""


@dataclass
class NodeRun:
    """What one node's relocation did (for the report and the benchmark)."""

    node: str
    targets: tuple[Target, ...]
    copied_live: float = 0.0  # seconds of copying while the roles ran
    downtime: float = 0.0  # seconds from stopping the roles to their health
    final_delta: float = 0.0  # seconds of the final delta, within the downtime
    verified: dict[str, int] = field(default_factory=dict)  # dest -> entries compared
    undone: bool = False  # the old location was put back
    notes: list[str] = field(default_factory=list)


def roles_of(targets: Sequence[Target]) -> tuple[Role, ...]:
    return in_start_order({t.role.name: t.role for t in targets}.values())


# A long command (a copy, a checksum run) prints a dot every 2 s while it runs, so a node that
# died or vanished is noticed after HEARTBEAT_IDLE without output, however long the copy is;
# the command's own output follows a newline. Its connection gone, the shell kills it too.
HEARTBEAT = """
out=$(mktemp) || exit 1
"$@" >"$out" & pid=$!
trap 'kill "$pid" 2>/dev/null; rm -f "$out"; exit 129' HUP PIPE TERM INT
i=0
while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1)); [ $((i % 20)) -ne 0 ] || printf .; sleep 0.1
done
wait "$pid"; status=$?
printf '\\n'; cat "$out"; rm -f "$out"; exit "$status"
"""
HEARTBEAT_IDLE = 60.0


def long_run(t: Transport, argv: tuple[str, ...]) -> CommandResult:
    """Run a long command with a heartbeat; its stdout without the dots."""
    sink = io.BytesIO()
    done = t.stream_out(("sh", "-c", HEARTBEAT, "sh", *argv), sink, idle_timeout=HEARTBEAT_IDLE)
    if done.status < 0:  # the channel closed without an exit status: the node went away
        raise NodeUnreachable(t.node, "transfer", f"the connection was lost during {argv[0]}")
    _, _, stdout = sink.getvalue().decode(errors="replace").partition("\n")
    return replace(done, argv=argv, stdout=stdout)


def _run(
    t: Transport, op: Operation, what: str, argv: tuple[str, ...], timeout: float = 600
) -> int:
    started = time.monotonic()
    done = long_run(t, argv) if timeout > 600 else t.run(argv, timeout=timeout, check=False)
    op.step(t.node, what, argv, "ok" if done.ok else f"exit {done.status}",
            time.monotonic() - started)  # fmt: skip
    if not done.ok and done.status != VANISHED:
        raise RelocationFailed(f"{what} failed: {reason(done.stderr, done.error_line)}")
    return done.status


def reason(stderr: str, last: str) -> str:
    """rsync's own cause (the receiver's error, e.g. "No space left on device (28)") rather
    than what its other side said when the receiver went away ("Broken pipe")."""
    for line in stderr.splitlines():
        if line.startswith("rsync:") and ("[receiver]" in line or "[generator]" in line):
            return line.strip()
    return last


def _mark(t: Transport, target: Target, phase: str) -> None:
    dest = "-" if phase == "-" else target.dest
    run_program(t, "datadirs", "moving", target.role.name, target.name, dest, phase)


def copy(t: Transport, target: Target, source: str, op: Operation, *, live: bool) -> None:
    status = _run(t, op, f"copy {target.role.name} {target.name} to {target.dest}"
                  + (" (roles running)" if live else " (final delta)"),
                  (*RSYNC, f"{source}/", f"{target.dest}/"), COPY_TIMEOUT)  # fmt: skip
    if status == VANISHED and not live:
        raise RelocationFailed(f"files vanished from {source} with its roles stopped")


def prefill(t: Transport, target: Target, op: Operation) -> None:
    """Copy the files' bytes while hashing them (kato/remote/treesum.py `copy`): the source
    is read once for the copy and its checksums; rsync then copies everything else."""
    started = time.monotonic()
    done = _treesum(t, "copy", target, target.current)
    op.step(t.node, f"copy and hash the files of {target.role.name} {target.name} (roles "
            "running)", None, "ok", time.monotonic() - started, files=done["files"],
            bytes=done["bytes"])  # fmt: skip


def compare(t: Transport, target: Target, source: str) -> dict[str, object]:
    """Both trees' checksum lists, compared on the node (kato/remote/treesum.py)."""
    return _treesum(t, "compare", target, source)


def _treesum(t: Transport, command: str, target: Target, source: str) -> dict[str, object]:
    cache = f"{CACHE}/{target.role.name}.{target.name}"
    AGENT.ensure(t)
    done = long_run(t, AGENT.argv("treesum.py", command, source, target.dest, cache))
    if not done.ok:
        what = "copying" if command == "copy" else "checking"
        raise RelocationFailed(f"{what} {source} to {target.dest}: {done.error_line}")
    found: dict[str, object] = json.loads(done.stdout)
    return found


def stage(t: Transport, op: Operation, run: NodeRun, location: str, progress: Progress) -> None:
    """Copy every data dir while its roles run, hashing the source's files as they are copied,
    then read the copy once (the checksum cache the verification after the final delta starts
    from)."""
    make = ("sh", "-c", 'mkdir -p -- "$1" && install -d -m 0700 -- "$2"', "sh", location, CACHE)
    _run(t, op, f"make {location} and the private staging dir", make)
    started = time.monotonic()
    for target in run.targets:
        if target.done:
            continue
        _mark(t, target, "copying")
        progress.step(f"{t.node}: copying {target.current} to {target.dest} (roles running)")
        prefill(t, target, op)
        copy(t, target, target.current, op, live=True)
        # written back now, while the roles run: the flush before the switch is then the delta's;
        # read back only after it: the longer the flush, the more of rsync's last changes to
        # the copy are settled (older than treesum's 2 s), so cached for the verification
        _run(t, op, f"flush {target.dest} to disk", ("sync", "-f", "--", target.dest), 3600)
        progress.step(f"{t.node}: reading the copy {target.dest} once")
        begun = time.monotonic()
        found = compare(t, target, target.current)
        op.step(t.node, f"read the copy {target.dest}", None, "ok", time.monotonic() - begun,
                entries=found["entries"])  # fmt: skip
    run.copied_live = time.monotonic() - started


def final_delta(t: Transport, op: Operation, run: NodeRun, progress: Progress) -> None:
    """With the roles stopped: copy what changed since the live copy."""
    started = time.monotonic()
    for target in run.targets:
        if not target.done:
            progress.step(f"{t.node}: final delta of {target.current}")
            copy(t, target, target.current, op, live=False)
    run.final_delta = time.monotonic() - started


def verify(t: Transport, op: Operation, run: NodeRun, progress: Progress) -> None:
    """Both sides' checksum lists must be equal (kato/relocate/downtime.py then switches)."""
    for target in pending(run):
        progress.step(f"{t.node}: verifying {target.dest} against {target.current}")
        started = time.monotonic()
        found = compare(t, target, target.current)
        op.step(t.node, f"verify {target.dest}", None, "equal" if found["equal"] else "differ",
                time.monotonic() - started, entries=found["entries"])  # fmt: skip
        if not found["equal"]:
            raise RelocationFailed(
                f"the copy {target.dest} differs from {target.current}: {found['difference']}"
            )
        run.verified[target.dest] = int(str(found["entries"]))


def pending(run: NodeRun) -> tuple[Target, ...]:
    """The run's data dirs not yet at the new location."""
    return tuple(t for t in run.targets if not t.done)


def record_args(target: Target, path: str) -> tuple[str, ...]:
    """kato/remote/datadirs.py's arguments for "TARGET's data dir lives at PATH from now on"."""
    units = json.dumps(list(target.role.units))
    return ("record", target.role.name, target.name, target.declared, path, units)


def switch(t: Transport, op: Operation, target: Target, path: str) -> None:
    """The one recorded change: the record and the units' drop-ins say `path`."""
    started = time.monotonic()
    run_program(t, "datadirs", *record_args(target, path))
    op.step(t.node, f"switch {target.role.name} {target.name} to {path}", None, "ok",
            time.monotonic() - started)  # fmt: skip


def start(t: Transport, op: Operation, run: NodeRun) -> None:
    """Start the roles in start order (the engine then waits for their health)."""
    for role in roles_of(run.targets):
        _run(t, op, f"start {role.name}", ("systemctl", "start", "--", *role.units), 300)


def finish(t: Transport, run: NodeRun) -> None:
    for target in run.targets:
        _mark(t, target, "-")


def undo(t: Transport, op: Operation, run: NodeRun) -> None:
    """Put each data dir back where it was before this run and start its roles on it."""
    for role in reversed(roles_of(run.targets)):
        _run(t, op, f"stop {role.name}", ("systemctl", "stop", "--", *role.units), 300)
    for target in run.targets:
        if not target.done:
            switch(t, op, target, target.current)
            _mark(t, target, "copying")  # the copy stays: a re-run continues from it
    start(t, op, run)
