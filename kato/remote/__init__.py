"""Programs that run on a node (standard library only), kept here as real, tested files."""
