"""What an import's switch prepares before its turn (while the lock is taken and the members
stage), so that switching a role costs the fence check, the journal step and one request line
instead of a `systemctl is-active` call and a new session starting python3 (measured:
docs/development.md, "Import's switch"):

- each (node, role)'s role cycle started in standby (engine/standby.py) as the import takes
  the lock (its python3 starting while the core waits on that round trip, not beside the
  staging's decompression), waiting for the request its turn sends; one never used is
  cancelled and starts nothing, one that gives no answer leaves the switch to the ordinary
  call;
- each role's unit states, as the node's data program saw them while it staged the role's
  member (node_data.py). The switch journals what it decides from them, and the node checks
  them again before its first command (engine/cycle.py's Expect): a role started or stopped
  since is answered, never acted on, and the switch decides again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kato.data.each_node import each_node
from kato.data.switch_plan import Group, commands
from kato.engine.standby import Standby
from kato.remote.agent import AGENT
from kato.transport.pool import Connections

Key = tuple[str, str]  # (node, role)


@dataclass
class Ahead:
    """Per (node, role): its unit states as staging reported them, and its waiting cycle."""

    states: dict[Key, dict[str, str]] = field(default_factory=dict)
    standbys: dict[Key, Standby] = field(default_factory=dict)

    def take(self, key: Key) -> Standby | None:
        """The (node, role)'s standby, once: whatever happens next, it is not used again."""
        return self.standbys.pop(key, None)

    def cancel(self) -> None:
        """End every standby not used (a failure before their turn, Ctrl-C, a lost lock): they
        start nothing; then wait a little for them to be gone before the connections close."""
        waiting = list(self.standbys.values())
        self.standbys.clear()
        for standby in waiting:
            standby.cancel()
        for standby in waiting:
            standby.cancel(wait=1.0)


def start(conns: Connections, groups: Sequence[Group]) -> Ahead:
    """A standby for each (node, role) the import switches, for the longest request its switch
    may send (the role started again and its health waited); the agent made sure of on each
    node first (at most conns.parallel at once)."""
    ahead = Ahead()
    each_node([g.node for g in groups], lambda n: AGENT.ensure(conns.get(n)), conns.parallel)
    for g in groups:
        ahead.standbys[(g.node, g.role.name)] = Standby(conns.get(g.node), commands(g), (g.role,))
    return ahead
