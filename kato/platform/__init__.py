"""The platform on the nodes: install a release, start/stop/restart its roles in order."""
