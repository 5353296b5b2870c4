"""Code that runs on the nodes, as real files (shipped to a node's python3)."""
