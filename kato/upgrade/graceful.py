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

from kato import release as releases
from kato import role_definitions
from kato.config import Cluster, LoadBalancer
from kato.errors import PreflightRefused
from kato.operation import Operation
from kato.roles import Role
from kato.transport.pool import Connections
from kato.upgrade import catalog, prepare, state, walk
from kato.upgrade.inplace import (
    UpgradeOutcome,
    new_record,
    preflight,
    stage_and_back_up,
)
from kato.upgrade.options import Options

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
    cluster: Cluster, version: str, how: Options, *, stateless: bool = False
) -> UpgradeOutcome:
    """`kato upgrade prep VERSION`; see the module docstring."""
    balancer(cluster)
    location = catalog.repository(cluster, how.repo)
    target = releases.load_release(location, version)
    with (
        prepare.verified(cluster, location, target) as ok,
        how.session(cluster) as s,
    ):
        conns, core = s.conns, s.transport(cluster.core)
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
        out = UpgradeOutcome(version, "prep", how.dry_run, plan, plan.running, resumed=resuming)
        if plan.nothing_to_do or how.dry_run:
            out.result = "nothing to do" if plan.nothing_to_do else "planned"
            return out
        if previous is not None and resuming:
            rec = previous
        else:
            rec = new_record(plan, "graceful", stateless=stateless)
        out.source = rec.source
        s.begin()  # one lock from staging to prepped, the export included
        rec = stage_and_back_up(s, rec, ok, plan, location, how, out)
        old = role_definitions.of_release(releases.load_release(location, rec.source))
        state.write(core, rec := rec.moved("stopping"))
        walk.stop(s, stopped_by_prep(old, rec.stateless))
        state.write(core, rec := rec.moved("prepped"))
        out.result, out.backup = "prepped", rec.backup
    return out
