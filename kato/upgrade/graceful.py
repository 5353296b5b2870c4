"""`kato upgrade prep V` then `kato upgrade takeover V` (deisctl's graceful upgrade): the
routers and the apps keep serving while the rest of the platform moves to V.

prep: the preflight (within one major version), stage, the pre-upgrade export, then stop every
role without `serves_during_upgrade` (with --stateless, the data services keep running).
takeover: each node carrying a serving role, one at a time: drained from the load balancer,
stopped, activated, started behind the health gate, put back; then V on the other nodes, the
migrations, and the stopped roles started in role order. A failed gate rolls back by itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from kato import release as releases
from kato import role_definitions
from kato.config import Cluster, LoadBalancer
from kato.connect import connections
from kato.errors import PreflightRefused
from kato.operation import Operation, operation
from kato.progress import Progress, SilentProgress
from kato.roles import Role
from kato.transport.pool import Connections
from kato.upgrade import catalog, prepare, state, walk
from kato.upgrade.inplace import DEFAULT_BACKUP_DIR, UpgradeOutcome, backup, preflight
from kato.upgrade.stage import stage_all
from kato.upgrade.state import UpgradeState

PREP = ("staging", "staged", "exported", "stopping", "prepped")


def stopped_by_prep(roles: dict[str, Role], stateless: bool) -> list[Role]:
    """The roles prep stops: all but the serving ones (and, --stateless, the data services)."""
    return [
        r
        for r in roles.values()
        if not r.serves_during_upgrade and not (stateless and r.data_service)
    ]


def balancer(cluster: Cluster) -> LoadBalancer:
    if cluster.load_balancer is None:
        raise PreflightRefused(
            "a graceful upgrade drains each router from the load balancer, and the cluster "
            "file names none",
            hint="add `load_balancer: {node, drain, undrain}` (docs/upgrade.md), or upgrade "
            "in place",
        )
    return cluster.load_balancer


def hook(cluster: Cluster, conns: Connections, op: Operation, which: str, router: str) -> None:
    """Run the load balancer's drain or undrain command for one router."""
    lb = balancer(cluster)
    address = cluster.node(router).address
    argv = tuple(
        a.replace("{router}", router).replace("{address}", address)
        for a in (lb.drain if which == "drain" else lb.undrain)
    )
    started = time.monotonic()
    conns.get(lb.node).run(argv, timeout=lb.timeout)
    op.step(lb.node, f"{which} {router}", argv, "ok", time.monotonic() - started)


def prep(
    cluster: Cluster,
    version: str,
    *,
    stateless: bool = False,
    repo: str | None = None,
    backup_dir: str = DEFAULT_BACKUP_DIR,
    no_backup: bool = False,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    command: Sequence[str] = (),
    progress: Progress | None = None,
) -> UpgradeOutcome:
    progress = progress or SilentProgress()
    balancer(cluster)
    location = catalog.repository(cluster, repo)
    target = releases.load_release(location, version)
    with prepare.verified(cluster, location, target) as ok, connections(cluster) as conns:
        core = conns.get(cluster.core)
        previous = state.read(core)
        resuming = previous is not None and previous.unfinished
        if (
            previous is not None
            and resuming
            and not (
                previous.kind == "graceful"
                and previous.target == version
                and previous.phase in PREP
            )
        ):
            raise PreflightRefused(
                f"the {previous.kind} upgrade {previous.source} -> {previous.target} is "
                f"unfinished ({previous.phase})",
                hint="`kato upgrade resume` or `kato upgrade rollback`",
            )
        plan = preflight(cluster, conns, location, target, ok, "graceful", False, resuming)
        out = UpgradeOutcome(version, "prep", dry_run, plan, plan.running, resumed=resuming)
        if plan.nothing_to_do or dry_run:
            out.result = "nothing to do" if plan.nothing_to_do else "planned"
            return out
        rec = (
            previous
            if previous is not None and resuming
            else UpgradeState(
                uuid.uuid4().hex[:12],
                "graceful",
                str(plan.running),
                version,
                target.digest,
                "staging",
                stateless=stateless,
            )
        )
        out.source = rec.source
        # one lock from staging to prepped, the export included
        with operation(conns, cluster.core, list(command), lock_wait=lock_wait) as op:
            state.write(core, rec)
            facts = prepare.gather(cluster, conns, location, target, ok)
            staged = stage_all(cluster, conns, op, target, ok, facts)
            if staged.failed:
                raise walk.WalkFailed("stage (nothing live was changed)", staged.failed)
            roles = sorted({m.role for m in plan.migrations})
            if no_backup and roles:
                out.notes.append(f"--no-backup: {', '.join(roles)} NOT exported before migrating")
            else:
                rec = backup(cluster, rec, roles, backup_dir, lock_wait, command, progress)
            old = role_definitions.of_release(releases.load_release(location, rec.source))
            state.write(core, rec := rec.moved("stopping"))
            walk.stop(cluster, conns, op, stopped_by_prep(old, stateless), progress)
            state.write(core, rec := rec.moved("prepped"))
        out.result, out.backup = "prepped", rec.backup
    return out
