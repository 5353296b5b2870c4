"""kato: administer a platform cluster over SSH."""

__version__ = "0.1.0"
