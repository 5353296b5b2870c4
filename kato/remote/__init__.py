"""Programs kato runs on the nodes, as real files (standard library only): `node_data.py`."""

from pathlib import Path

HERE = Path(__file__).parent


def program(name: str) -> bytes:
    """The source of the node program `name` (e.g. "node_data.py"), as shipped to a node."""
    return (HERE / name).read_bytes()
