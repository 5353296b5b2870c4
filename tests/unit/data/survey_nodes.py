"""Fake nodes answering the node agent's facts program as a data command's survey asks it."""

from __future__ import annotations

import json
from dataclasses import replace

from kato.config import NodeConfig
from tests.fakes import FakeCluster, FakeNode

DROPLETS = "/var/lib/kato/data/droplets"  # the bundled filesystem role's declared path


class Nodes:
    """Fake nodes answering node_facts.py as the real program does for what a survey asks:
    a data-dir record each, role.yaml texts, and which paths are missing."""

    def __init__(self) -> None:
        self.fake = FakeCluster(["node1", "node2", "node3"])
        roles = {"node1": ("controller", "filesystem"), "node2": ("router", "dea")}
        self.fake.cluster = replace(
            self.fake.cluster,
            nodes=tuple(
                NodeConfig(n.name, n.address, n.port, roles.get(n.name, ("router", "dea")))
                for n in self.fake.cluster.nodes
            ),
        )
        self.records: dict[str, dict[str, object]] = {}
        self.texts: dict[str, dict[str, str]] = {}
        self.missing: set[str] = set()
        self.fake.answers.append(self.agent)

    def agent(
        self, node: FakeNode, argv: tuple[str, ...], stdin: bytes | None
    ) -> tuple[int, str, str] | None:
        if argv[:2] != ("python3", "-S") or not argv[2].endswith("/node_facts.py"):
            return None
        request = json.loads(argv[3])
        record = self.records.get(node.name, {"format": 1, "data_dirs": {}})
        doc: dict[str, object] = {"format": 1, "boot_id": "b", "now": 0.0, "version": "1.0.0"}
        if request.get("definitions"):
            doc["definitions"] = self.texts.get(node.name, {})
        dirs = list(request.get("dirs", []))
        if request.get("datadirs"):
            doc["datadirs"] = record
            for role, names in request.get("dirs_of", {}).items():
                moved = record["data_dirs"].get(role, {})  # type: ignore[attr-defined]
                dirs += [moved[n]["path"] for n in names if n in moved]
        if request.get("space"):
            doc["space"] = {p: {"free": 5 << 30, "inodes_free": 1000} for p in request["space"]}
        if dirs:
            doc["dirs"] = {
                p: {"mode": "0750", "owner": "0:0", "size": 7, "dir": True}
                if p not in self.missing
                else None
                for p in dirs
            }
        return 0, json.dumps(doc), ""

    def agent_calls(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node, argv in self.fake.calls:
            if argv[:2] == ("python3", "-S"):
                counts[node] = counts.get(node, 0) + 1
        return counts
