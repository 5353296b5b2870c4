"""The only door to the world outside the process: local commands and SSH to nodes."""
