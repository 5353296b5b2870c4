"""What patch install, revert and status ask each node before anything: its role definitions
and its patch state in one agent call (node_facts.py asked for both)."""

from __future__ import annotations

import json
from typing import Any

from kato.connect import connections, select_nodes
from kato.patch.status import asked_of_nodes
from tests.fakes import FakeCluster, FakeNode

NODES = ["node1", "node2", "node3"]
RECORD = {"name": "fix", "sha256": "a" * 64, "version": "1.0.0", "roles": ["router"]}


def node_facts(node: FakeNode, argv: tuple[str, ...], stdin: bytes | None) -> Any:
    """node_facts.py answering definitions (none on the node: kato's bundled ones) and patches."""
    if not (argv[0] == "python3" and argv[-2].endswith("/node_facts.py")):
        return None
    request = json.loads(argv[-1])
    records = {"fix": {**RECORD, "restart_pending": []}} if node.name == "node2" else {}
    patches = {"version": "1.0.0", "records": records, "interrupted": []}
    answer = {"format": 1, "boot_id": "b", "version": "1.0.0", "now": 0.0, "definitions": {}}
    answer["patches"] = patches if "patches" in request else None
    return 0, json.dumps(answer), ""


def test_definitions_and_patch_state_come_in_one_call_per_node() -> None:
    fake = FakeCluster(NODES, roles=("router",))
    fake.answers.append(node_facts)
    with connections(fake.cluster, fake.factory) as conns:
        roles, states = asked_of_nodes(fake.cluster, conns, select_nodes(fake.cluster))
    assert set(roles.nodes) == set(states.succeeded) == set(NODES) and not states.failed
    assert list(states.succeeded["node2"].applied) == ["fix"]
    assert states.succeeded["node1"].version == "1.0.0"
    for node in NODES:  # one python3 on the node, not a definitions call and a state call
        agent_calls = [a for a in fake.ran(node) if a[0] == "python3" and a[1] == "-S"]
        assert len(agent_calls) == 1 and agent_calls[0][2].endswith("/node_facts.py")
        units = json.loads(agent_calls[0][-1])["patches"]
        assert units == {"router": list(roles.of(node)["router"].units)}
