"""The takeover's two walks (kato/upgrade/takeover.py): the nodes carrying a serving role, one at
a time on the rollout engine (drain, stop, activate, start, health, undrain; each undone, newest
first, when one fails), then the rest of the platform in role order with the migrations."""

from __future__ import annotations

import time

from kato import release as releases
from kato import role_definitions
from kato.engine.batches import Batching
from kato.engine.health import wait_healthy
from kato.engine.report import RolloutReport
from kato.engine.rollout import NodeChange, rollout
from kato.engine.session import Session
from kato.migrations import pending
from kato.roles import Role, in_start_order
from kato.upgrade import state, walk
from kato.upgrade.graceful import hook, stopped_by_prep
from kato.upgrade.state import UpgradeState


class Takeover:
    """The takeover's two walks: the serving nodes one at a time on the rollout engine (each
    undone, newest first, when one fails), then the rest of the platform in role order."""

    def __init__(self, s: Session, rec: UpgradeState, location: str) -> None:
        self.s, self.rec, self.cluster = s, rec, s.cluster
        self.old_release = releases.load_release(location, rec.source)
        self.new_release = releases.load_release(location, rec.target)
        old = role_definitions.of_release(self.old_release)
        new = role_definitions.of_release(self.new_release)
        keep = {r.name for r in old.values() if rec.stateless and r.data_service}
        self.old, self.new = old, new
        self.upgraded = {n: r for n, r in new.items() if n not in keep}
        self.leaving = {n: r for n, r in old.items() if n not in keep}
        self.serving = [r.name for r in old.values() if r.serves_during_upgrade]
        self.nodes = sorted(
            {n.name for n in self.cluster.nodes for r in self.serving if r in n.roles}
        )

    def sequence(self) -> list[str]:
        """What the takeover would do, one line per step (its --dry-run)."""
        target, moved = self.rec.target, self.rec.taken_over
        steps = [
            f"{node}: drain, stop {', '.join(self._serving_on(node))}, activate {target}, "
            "start, health gate, undrain"
            for node in self.nodes
            if node not in moved
        ]
        others = [n.name for n in self.cluster.nodes if n.name not in self.nodes]
        if others:
            steps.append(f"activate {target} on {', '.join(others)}")
        migrations = pending(self.old_release.migrations, self.new_release.migrations)
        steps.extend(f"migration {m.name} ({m.role})" for m in migrations)
        stopped = stopped_by_prep(self.old, self.rec.stateless)
        started = [r.name for r in stopped if r.name in self.upgraded]
        steps.append(f"start {', '.join(started)} in role order, each behind its health gate")
        return steps

    def _serving_on(self, node: str) -> list[str]:
        return [r for r in self.serving if r in self.cluster.node(node).roles]

    def save(self, phase: str, **changes: object) -> None:
        self.rec = self.rec.moved(phase, **changes)
        state.write(self.s.transport(self.cluster.core), self.rec)

    def change_for(self, node: str, back: bool = False) -> NodeChange:
        """One serving node moved to the target (undone by moving it back), or, `back`, moved
        back to the source release."""
        s, mine = self.s, [r for r in self.serving if r in self.cluster.node(node).roles]
        running = {"defs": self.new}

        def move(version: str, new: dict[str, Role], old: dict[str, Role]) -> int:
            hook(self.cluster, s.conns, s.op, "drain", node)
            for role in reversed(in_start_order(old[r] for r in mine)):
                walk.stop_on(s, node, role)
            walk.activate_on(s, node, version, new, old)
            running["defs"] = new
            for role in in_start_order(new[r] for r in mine):
                walk.start_on(s, node, role)  # the health gate is verify()'s
            return 1

        def verify() -> None:
            wait_healthy(s.conns, node, [running["defs"][r] for r in mine])
            hook(self.cluster, s.conns, s.op, "undrain", node)
            done = self.rec.taken_over
            if running["defs"] is self.upgraded and node not in done:
                self.save("taking over", taken_over=(*done, node))

        def undo() -> None:
            move(self.rec.source, self.leaving, self.upgraded)
            self.save("taking over", taken_over=tuple(n for n in self.rec.taken_over if n != node))

        if back:
            return NodeChange(
                node, lambda: move(self.rec.source, self.leaving, self.upgraded), verify=verify
            )
        return NodeChange(
            node,
            lambda: move(self.rec.target, self.upgraded, self.leaving),
            undo=undo,
            verify=verify,
        )

    def routers(self) -> RolloutReport:
        """Each serving node in turn: drain, stop, activate, start, health, undrain."""
        self.s.begin()
        self.save("taking over")
        todo = [self.change_for(n) for n in self.nodes if n not in self.rec.taken_over]
        return rollout(self.s, todo, Batching(self.s.parallel, serial=1), undo_all=True)

    def back_to_prep(self, why: str) -> UpgradeState:
        """The routers were undone: start what prep stopped, on the old release again."""
        s = self.s
        stopped = stopped_by_prep(self.old, self.rec.stateless)
        walk.start(s, stopped)
        self.save("rolled back", result="rolled back", detail=why[:200])
        return self.rec

    def rest(self) -> UpgradeState:
        """V on the other nodes, the migrations, the stopped roles started in role order."""
        s, cluster = self.s, self.cluster
        started = time.monotonic()
        others = [n.name for n in cluster.nodes if n.name not in self.nodes]
        self.save("activating")
        if others:
            walk.activate(s, self.rec.target, self.upgraded, self.leaving, nodes=others)
        migrations = pending(self.old_release.migrations, self.new_release.migrations)
        self.save("migrating", migrated=tuple(m.name for m in migrations))
        walk.migrate(s, self.rec.target, migrations)
        self.save("starting")
        stopped = stopped_by_prep(self.old, self.rec.stateless)
        walk.start(s, [self.upgraded[r.name] for r in stopped if r.name in self.upgraded])
        self.save("done", result="done", downtime=round(time.monotonic() - started, 3))
        return self.rec
