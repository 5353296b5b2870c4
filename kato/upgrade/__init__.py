"""Platform releases on the nodes and upgrades between them (docs/upgrade.md)."""
