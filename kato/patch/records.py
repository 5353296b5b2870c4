"""What a node has applied of patches: the records under /var/lib/kato/patches, each patch's
work dir (its backups and undo plan) and whether its roles restarted since; the node side,
standard library only. The patch agent (kato/patch/agent.py) writes them; the node facts
(kato/remote/node_facts.py) read them for `kato status` and `kato patch status` without
loading the agent. Shipped beside them as patch_records.py.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

try:  # kato/remote/safe_write.py: shipped beside this program on a node, a module of kato here
    SAFE = importlib.import_module("safe_write")
except ImportError:
    SAFE = importlib.import_module("kato.remote.safe_write")
FORMAT = 1
TMP = ".kato-patch-tmp"


class Refused(Exception):
    """The command cannot go on; nothing is left half done."""


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    SAFE.write_file(str(path), [data], mode)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_into_place(
    source: Path, target: Path, mode: int, owner: tuple[int, int], mtime_ns: int | None = None
) -> None:
    """Replace target by a copy of source through a new temporary file and one rename
    (never through a link planted at the target or in its directories)."""
    with open(source, "rb") as handle:
        chunks = iter(lambda: handle.read(1 << 20), b"")
        SAFE.write_file(str(target), chunks, mode, owner, mtime_ns=mtime_ns)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Node:
    def __init__(self, root: Path) -> None:
        self.releases = root / "var/lib/kato/releases"
        self.patches = root / "var/lib/kato/patches"

    def record_path(self, name: str) -> Path:
        return self.patches / f"{name}.json"

    def record(self, name: str) -> dict[str, Any] | None:
        path = self.record_path(name)
        if path.is_symlink():
            raise Refused(f"{path} is a symbolic link: refusing to read or write through it")
        try:
            loaded = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as exc:
            raise Refused(
                f"{path} is not a readable patch record ({exc}): move it aside and run "
                "`kato patch status` to see what is applied"
            ) from None
        if not isinstance(loaded, dict):
            raise Refused(f"{path} is not a patch record (not a JSON object): move it aside")
        return loaded

    def version(self) -> str | None:
        current = self.releases / "current"
        return os.path.basename(os.readlink(current)) if current.is_symlink() else None

    def undo(self, name: str) -> bool:
        """Put back what an apply of NAME changed (idempotent); True if there was anything."""
        work = self.patches / name
        if not work.exists():
            return False
        undo_file = work / "undo.json"
        if undo_file.exists():
            plan = json.loads(undo_file.read_text())
            for item in plan["replaced"]:
                owner = (item["uid"], item["gid"])
                backup = work / "backup" / item["backup"]
                copy_into_place(backup, Path(item["path"]), item["mode"], owner, item["mtime_ns"])
            for path in plan["added"]:
                Path(path).unlink(missing_ok=True)
            for directory in reversed(plan["dirs_added"]):
                if Path(directory).is_dir() and not any(Path(directory).iterdir()):
                    Path(directory).rmdir()
        return True

    def drop(self, name: str) -> None:
        self.record_path(name).unlink(missing_ok=True)
        fsync_dir(self.patches)
        shutil.rmtree(self.patches / name, ignore_errors=True)


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def active_since(unit: str) -> float | None:
    """When the unit last became active, in seconds of CLOCK_MONOTONIC; None when not active."""
    done = subprocess.run(
        ("systemctl", "show", "-p", "ActiveState", "-p", "ActiveEnterTimestampMonotonic", unit),
        capture_output=True,
        text=True,
    )
    fields = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if fields.get("ActiveState") != "active":
        return None
    return int(fields.get("ActiveEnterTimestampMonotonic", "0")) / 1e6


def state(node: Node, units: dict[str, list[str]]) -> dict[str, Any]:
    """The node's platform version, its patch records and the roles still to restart."""
    records: dict[str, Any] = {}
    interrupted = []
    names = sorted(p.name for p in node.patches.iterdir()) if node.patches.is_dir() else []
    for entry in names:
        if entry.endswith(".json"):
            record = node.record(entry[: -len(".json")])
            assert record is not None
            same_boot = record.get("boot_id") == boot_id()
            record["restart_pending"] = [
                role
                for role in record.get("roles", [])
                if same_boot
                and any(
                    (since := active_since(u)) is None or since < record["applied_monotonic"]
                    for u in units.get(role, ())
                )
            ]
            records[record["name"]] = record
        elif (
            not entry.endswith(TMP)
            and not entry.startswith(".")  # a temporary file of write_file
            and not (node.patches / f"{entry}.json").exists()
        ):
            interrupted.append(entry)
    return {"version": node.version(), "records": records, "interrupted": interrupted}
