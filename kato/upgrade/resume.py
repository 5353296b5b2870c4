"""`kato upgrade resume`: continue the interrupted upgrade the record on the core node names,
as running its command again would (an in-place upgrade to its end, a graceful one's prep to
prepped, its takeover to its end); each of those picks up after its last recorded phase."""

from __future__ import annotations

from kato.config import Cluster
from kato.connect import connections
from kato.errors import UsageError
from kato.upgrade import graceful, inplace, state, takeover
from kato.upgrade.inplace import UpgradeOutcome
from kato.upgrade.options import Options


def resume(cluster: Cluster, how: Options) -> UpgradeOutcome:
    """Continue the unfinished upgrade the record names (exit 2 when there is none)."""
    with connections(cluster) as conns:
        rec = state.read(conns.get(cluster.core))
    if rec is None or not rec.unfinished:
        raise UsageError("no upgrade is unfinished", hint="`kato upgrade status` says more")
    if rec.kind == "in-place":
        return inplace.in_place(cluster, rec.target, how)
    if rec.phase in graceful.PREP:
        return graceful.prep(cluster, rec.target, how, stateless=rec.stateless)
    return takeover.takeover(cluster, rec.target, how)
