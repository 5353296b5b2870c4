"""The sandbox: a cluster of real Debian nodes (systemd-nspawn) on this machine."""
