"""`kato upgrade task V -- CMD` and `kato upgrade tasks`: one-off tasks run with a staged (or
running) release's code on the node carrying a role, each recorded on the core node in
/var/lib/kato/upgrade/tasks.jsonl (one JSON line per task, format 1). The migrations an upgrade
runs are recorded there too."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from kato.config import Cluster
from kato.connect import connections
from kato.errors import PreflightRefused, UsageError
from kato.journal import mask
from kato.operation import operation
from kato.remote import safe_write
from kato.transport.base import CommandResult, Transport
from kato.upgrade import nodes as node_releases
from kato.upgrade.nodes import RELEASES

LOG = "/var/lib/kato/upgrade/tasks.jsonl"
IN_RELEASE = 'cd "$1" && shift && exec "$@"'
TASK_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Task:
    id: str
    release: str
    node: str
    role: str
    command: tuple[str, ...]
    started: float
    seconds: float
    exit: int
    last_line: str
    format: int = 1


def last_line(result: CommandResult) -> str:
    lines = (result.stdout.strip() or result.stderr.strip()).splitlines()
    return lines[-1][-200:] if lines else ""


def record(core: Transport, task: Task) -> None:
    line = (json.dumps(asdict(task)) + "\n").encode()  # never through a planted link
    core.run(safe_write.append_argv(LOG), stdin=safe_write.prelude() + line)


def run_in_release(
    transport: Transport, release: str, role: str, argv: Sequence[str]
) -> tuple[CommandResult, float, float]:
    """argv in RELEASES/release/role on the node: (result, started, seconds)."""
    started = time.time()
    directory = f"{RELEASES}/{release}/{role}"
    result = transport.run(
        ("sh", "-c", IN_RELEASE, "sh", directory, *argv), check=False, timeout=TASK_TIMEOUT
    )
    return result, started, time.time() - started


def task(
    cluster: Cluster,
    version: str,
    role: str,
    argv: Sequence[str],
    *,
    node: str | None = None,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    command: Sequence[str] = (),
) -> Task:
    """Run argv once, on `node` or the first node carrying `role`, in the release's role dir.
    A dry run checks the same and returns the task unrun (started 0, exit -1)."""
    if not argv:
        raise UsageError("no command to run", hint="kato upgrade task V --role ROLE -- CMD ARGS")
    carriers = [n.name for n in cluster.nodes if role in n.roles]
    if not carriers:
        raise UsageError(f"no node carries {role!r}", hint="see `kato status`")
    target = node or carriers[0]
    if target not in carriers:
        raise UsageError(f"{target} does not carry {role}", hint=f"nodes: {', '.join(carriers)}")
    with connections(cluster) as conns:
        have = node_releases.gather(conns.get(target))
        copy = have.versions.get(version)
        if copy is None or role not in copy.roles:
            raise PreflightRefused(
                f"{version} is not staged on {target} for {role}",
                hint=f"stage it first: `kato upgrade stage {version}`",
            )
        if dry_run:
            return Task("-", version, target, role, tuple(mask(argv)), 0.0, 0.0, -1, "")
        with operation(conns, cluster.core, list(command), lock_wait=lock_wait) as op:
            result, started, seconds = run_in_release(conns.get(target), version, role, argv)
            done = Task(
                uuid.uuid4().hex[:12],
                version,
                target,
                role,
                tuple(mask(argv)),
                round(started, 3),
                round(seconds, 3),
                result.status,
                last_line(result),
            )
            record(conns.get(cluster.core), done)
            op.step(
                target,
                f"task {done.id} in {version}/{role}",
                argv,
                "ok" if result.ok else f"exit {result.status}",
                seconds,
            )
    return done


def tasks(cluster: Cluster, limit: int = 50) -> tuple[Task, ...]:
    """The last `limit` tasks recorded, oldest first."""
    with connections(cluster) as conns:
        result = conns.get(cluster.core).run(("tail", "-n", str(limit), LOG), check=False)
    found = []
    for line in result.stdout.splitlines() if result.ok else []:
        try:
            raw = json.loads(line)
            raw["command"] = tuple(raw["command"])
            found.append(Task(**raw))
        except (ValueError, TypeError):
            continue  # a line cut by a crash mid-append
    return tuple(found)
