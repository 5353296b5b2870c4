"""`kato upgrade takeover V`, the second half of a graceful upgrade: each node carrying a role
that serves during the upgrade, one at a time on the rollout engine, is drained from the load
balancer, stopped, activated, started, health-gated and put back (a failure undoes it and every
node taken over before it, newest first); then V on the other nodes, the migrations, and the
roles prep stopped started in role order. A failure there rolls every node back by itself.
"""

from __future__ import annotations

import time

from kato import release as releases
from kato.config import Cluster
from kato.engine.report import FAILED
from kato.engine.session import Session
from kato.errors import Interrupted, KatoError, PreflightRefused, UsageError
from kato.upgrade import catalog, state, takeback
from kato.upgrade import nodes as node_releases
from kato.upgrade.graceful import PREP, balancer
from kato.upgrade.inplace import UpgradeOutcome
from kato.upgrade.options import Options
from kato.upgrade.state import UpgradeState
from kato.upgrade.takeover_walk import Takeover
from kato.versions import is_orderable, parse


def takeover(cluster: Cluster, version: str, how: Options) -> UpgradeOutcome:
    """`kato upgrade takeover VERSION`; see the module docstring."""
    balancer(cluster)
    location = catalog.repository(cluster, how.repo)
    begun = time.monotonic()
    with how.session(cluster) as s:
        core = s.transport(cluster.core)
        refuse_major_jump(s, version, location)
        rec = prepared(state.read(core), version)
        out = UpgradeOutcome(version, "takeover", how.dry_run, None, rec.source)
        out.backup = rec.backup
        walker = Takeover(s, rec, location)
        if how.dry_run:
            out.steps = walker.sequence()
            return out
        s.begin()  # one lock from the first router to the end, any rollback included
        try:
            rec = _walk(walker, out)
        except (RoutersStuck, Interrupted):
            raise  # the record says where each node is; rolling back needs those nodes
        except KatoError as exc:
            out.failure = exc.message
            rec = state.failed(core, walker.rec, exc.message)
        if rec.unfinished and out.failure:
            how.progress.warn(
                f"{out.failure}: moving every node back to {rec.source}, routers one by one"
            )
            rec = takeback.recover(s, rec, location)
    out.result, out.downtime = str(rec.result), rec.downtime
    out.seconds = time.monotonic() - begun
    return out


def _walk(walker: Takeover, out: UpgradeOutcome) -> UpgradeState:
    """The routers one at a time, then the rest; routers undone after a failure -> prep's
    roles started again on the old release; a router that could not be undone -> RoutersStuck."""
    report = walker.routers()
    if not report.failed_nodes:
        return walker.rest()
    out.failure = report.summary("the takeover of the routers")
    stuck = report.of(FAILED)  # its undo failed too: not back on the old release
    if stuck:
        walker.save(f"failed: {out.failure[:200]}")
        raise RoutersStuck(
            f"{out.failure}; {', '.join(stuck)} could not be put back",
            hint=f"bring {', '.join(stuck)} back (`kato status`), then "
            "`kato upgrade rollback` (or `kato upgrade resume` to go on)",
        )
    return walker.back_to_prep(out.failure)


class RoutersStuck(KatoError):
    """A serving node failed and could not be put back either: nothing more is tried."""


def refuse_major_jump(s: Session, version: str, location: str) -> None:
    """A graceful upgrade stays within one major version, whatever was prepared (exit 7)."""
    found = {n.name: node_releases.gather(s.transport(n.name)) for n in s.cluster.nodes}
    running = catalog.running_version(found)
    releases.load_release(location, version)  # an unknown version: exit 2, naming the known
    comparable = running is not None and is_orderable(running) and is_orderable(version)
    if comparable and parse(str(running)).major != parse(version).major:
        raise PreflightRefused(
            f"{running} -> {version} crosses a major version: a graceful upgrade stays within one",
            hint=f"upgrade in place: `kato upgrade in-place {version}`",
        )


def prepared(rec: UpgradeState | None, version: str) -> UpgradeState:
    """The record of the prep of `version`, or a refusal naming the next step."""
    if rec is None or rec.kind != "graceful" or not rec.unfinished or rec.target != version:
        raise UsageError(
            f"no graceful upgrade to {version} is prepared",
            hint=f"run `kato upgrade prep {version}` first (`kato upgrade status` says more)",
        )
    if rec.phase in PREP and rec.phase != "prepped":
        raise PreflightRefused(
            f"the prep of {version} did not finish ({rec.phase})",
            hint="`kato upgrade resume` finishes it, `kato upgrade rollback` undoes it",
        )
    return rec
