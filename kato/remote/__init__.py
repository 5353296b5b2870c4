"""Programs kato runs on the nodes, as real files (standard library only), the node agent that
ships them once per run, and the node layout (every path kato uses on a node)."""

from pathlib import Path

HERE = Path(__file__).parent


def program(name: str) -> bytes:
    """The source of the node program `name` (e.g. "node_facts.py"), as shipped to a node."""
    return (HERE / name).read_bytes()
