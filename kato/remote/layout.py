"""The node layout: every path kato reads or writes on a node, in one place (docs: ARCHITECTURE
"Node layout")."""

from __future__ import annotations

KATO_ETC = "/etc/kato"
NODE_FILE = f"{KATO_ETC}/node.yaml"  # node identity written by install
UPSTREAMS = f"{KATO_ETC}/router-upstreams.conf"  # the routers' app hosts, written by install
STATE = "/var/lib/kato"
RELEASES = f"{STATE}/releases"  # <version>/<role>/, and current -> <version>
PATCHES = f"{STATE}/patches"  # <name>.json: applied patches; <name>/: their undo data
STAGING = f"{STATE}/staging"  # private staging for uploads, imports and relocations (0700)
DATADIRS = f"{STATE}/datadirs.yaml"  # where each named data dir lives now
AGENT = f"{STATE}/agent"  # <digest>/: the node agent's programs, cached by content hash
UNIT_DIR = "/etc/systemd/system"  # the roles' unit files
JOURNAL = "/var/log/kato/journal.jsonl"  # on the core node: one line per operation step
LOCK = "/run/kato/lock"  # on the core node: the cluster lock
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def release_dir(version: str, role: str) -> str:
    return f"{RELEASES}/{version}/{role}"
