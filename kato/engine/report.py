"""What a rollout did, node by node: done, undone, failed (with its phase) or not reached."""

from __future__ import annotations

from dataclasses import dataclass

from kato.errors import outcome_exit
from kato.transport.fanout import NodeFailure

DONE, UNDONE, FAILED, NOT_REACHED = "done", "undone", "failed", "not reached"
STAGE, CHANGE, HEALTH = "stage", "change", "health"  # the phases a node can fail in


@dataclass(frozen=True)
class NodeResult:
    node: str
    state: str  # DONE, UNDONE, FAILED or NOT_REACHED
    phase: str | None = None  # where it failed (STAGE, CHANGE or HEALTH)
    message: str = ""  # what failed
    exit_code: int = 0  # of the failure: 5 when the node did not answer
    count: int = 0  # what the change returned (e.g. patches applied)
    undo: str = ""  # what undoing it did: "undone on this node", "undoing it failed too (...)"

    @property
    def detail(self) -> str:
        return f"{self.message}; {self.undo}" if self.undo else self.message

    @property
    def shown(self) -> str:
        """`done`, `undone (failed in health)`, `undone (another node failed)`, `failed in
        change`, `not reached`."""
        if self.state == UNDONE:
            return f"undone (failed in {self.phase})" if self.phase else f"undone ({self.message})"
        if self.state == FAILED:  # no phase: undoing a node that had not failed failed
            return f"failed in {self.phase or 'undo'}"
        return self.state


@dataclass(frozen=True)
class RolloutReport:
    nodes: tuple[NodeResult, ...]
    interrupted: bool = False

    def of(self, *states: str) -> tuple[str, ...]:
        return tuple(r.node for r in self.nodes if r.state in states)

    @property
    def done(self) -> dict[str, int]:
        return {r.node: r.count for r in self.nodes if r.state == DONE}

    @property
    def failed_nodes(self) -> dict[str, NodeFailure]:
        """Undone and failed nodes, as the per-node failures every outcome carries."""
        return {
            r.node: NodeFailure(r.node, r.phase or "undo", r.detail, r.exit_code)
            for r in self.nodes
            if r.state in (UNDONE, FAILED)
        }

    @property
    def not_reached(self) -> tuple[str, ...]:
        return self.of(NOT_REACHED)

    @property
    def exit_code(self) -> int:
        failures = [r.exit_code or 1 for r in self.nodes if r.state in (UNDONE, FAILED)]
        return int(outcome_exit(len(self.done), failures, len(self.not_reached)))

    def summary(self, what: str) -> str:
        parts = [f"{r.node} {r.shown}" for r in self.nodes]
        return f"{what}: " + ", ".join(parts)

    def hint(self) -> str:
        failed = self.of(FAILED)
        if failed:
            return f"{', '.join(failed)} could not be put back: see the messages above"
        return "the nodes in flight were put back; run the command again to go on"
