"""The node side of patches: a standalone program (standard library only) kato runs on a node
as `python3 - ROOT COMMAND ARGS...` with this file on stdin.

    state UNITS_JSON        what is applied here, whether each role restarted since (JSON)
    apply NAME VERSION STAGED SHA256 ROLES RECORD_JSON
    revert NAME             restore the replaced files, run the revert script, drop the record

A patch NAME lives in PATCHES/NAME/ while it is applied: artifact/ (the unpacked artifact),
backup/ (the files it replaced, byte for byte) and undo.json (what to restore and what to
delete), written before the first file is replaced. PATCHES/NAME.json, the record, is written
last. A directory without a record is an apply or revert that was interrupted: both commands
undo it first, so a node killed at any point ends fully patched or fully unpatched.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

FORMAT = 1
TMP = ".kato-patch-tmp"


class Refused(Exception):
    """The command cannot go on; nothing is left half done."""


try:  # kato/remote/safe_write.py: shipped beside this program on a node, a module of kato here
    SAFE = importlib.import_module("safe_write")
except ImportError:
    SAFE = importlib.import_module("kato.remote.safe_write")


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


def unpack(staged: Path, target: Path) -> list[tuple[str, int]]:
    """Extract regular files and directories only, never outside target; (name, mode) of files."""
    files = []
    with tarfile.open(staged, "r:gz") as tar:
        for member in tar.getmembers():
            pure = PurePosixPath(member.name)
            if pure.is_absolute() or ".." in pure.parts or not (member.isfile() or member.isdir()):
                raise Refused(f"the artifact holds {member.name!r}: not a plain relative file")
            if member.isdir():
                (target / pure).mkdir(parents=True, exist_ok=True)
                continue
            (target / pure).parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            with source, open(target / pure, "wb") as handle:
                shutil.copyfileobj(source, handle)
            files.append((str(pure), 0o755 if member.mode & 0o111 else 0o644))
    return files


def plan_undo(
    node: Node, work: Path, version: str, roles: list[str], files: list[tuple[str, int]]
) -> dict[str, Any]:
    """Back up every file the patch replaces; note the files and directories it adds."""
    plan: dict[str, Any] = {
        "format": FORMAT,
        "replaced": [],
        "added": [],
        "dirs_added": [],
        "laid": [],
    }
    for name, mode in files:
        parts = PurePosixPath(name).parts
        if parts[0] != "files" or len(parts) < 3 or parts[1] not in roles:
            continue
        role_dir = node.releases / version / parts[1]
        if not role_dir.is_dir():
            raise Refused(f"{role_dir} is missing: is {parts[1]} {version} installed here?")
        target = role_dir.joinpath(*parts[2:])
        for path in (target, *target.parents):
            if path.is_symlink() and path != node.releases / "current":
                # never read (back up) or write through a link planted where the patch writes
                raise Refused(f"{path} is a symbolic link: refusing to read or write through it")
            if path == role_dir:
                break
        if target.exists() and not target.is_file():
            raise Refused(f"{target} is not a regular file: refusing to replace it")
        parent = target.parent
        while not parent.exists() and str(parent) not in plan["dirs_added"]:
            plan["dirs_added"].append(str(parent))
            parent = parent.parent
        plan["laid"].append({"source": name, "path": str(target), "mode": mode})
        if target.is_file():
            backup = "/".join(parts[1:])
            (work / "backup" / backup).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, work / "backup" / backup)
            st = target.stat()
            plan["replaced"].append(
                {
                    "path": str(target),
                    "backup": backup,
                    "mode": st.st_mode & 0o7777,
                    "uid": st.st_uid,
                    "gid": st.st_gid,
                    "mtime_ns": st.st_mtime_ns,
                    "sha256": sha256_of(target),
                }
            )
        elif target.exists():
            raise Refused(f"{target} is not a regular file")
        else:
            plan["added"].append(str(target))
    plan["dirs_added"].sort(key=len)
    return plan


def run_script(work: Path, script: str | None, version: str, roles: list[str], node: Node) -> None:
    if not script:
        return
    path = work / "artifact" / script
    done = subprocess.run(
        ("/bin/sh", str(path), version, str(node.releases / version), ",".join(roles)),
        cwd=work / "artifact",
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise Refused(f"{script} exited {done.returncode}: {last}")


def apply(
    node: Node,
    name: str,
    version: str,
    staged: Path,
    sha256: str,
    roles: list[str],
    record: dict[str, Any],
) -> dict[str, Any]:
    have = node.record(name)
    if have is not None:
        staged.unlink(missing_ok=True)
        if have.get("sha256") != sha256:
            raise Refused(
                f"another build of {name} is applied here "
                f"(sha256 {have.get('sha256')}): revert it first"
            )
        return {"result": "applied already"}
    if node.undo(name):
        node.drop(name)  # an interrupted apply or revert: start from the unpatched files
    if sha256_of(staged) != sha256:
        staged.unlink(missing_ok=True)
        raise Refused(f"the staged artifact of {name} does not have sha256 {sha256}")
    work = node.patches / name
    work.mkdir(parents=True, mode=0o700)
    try:
        files = unpack(staged, work / "artifact")
        plan = plan_undo(node, work, version, roles, files)
        write_atomically(work / "undo.json", json.dumps(plan, indent=1).encode(), 0o600)
    except BaseException:
        node.drop(name)  # nothing was laid yet: the node is as it was
        staged.unlink(missing_ok=True)
        raise
    try:
        for directory in plan["dirs_added"]:
            Path(directory).mkdir(exist_ok=True)
        for item in plan["laid"]:
            copy_into_place(
                work / "artifact" / item["source"], Path(item["path"]), item["mode"], (0, 0)
            )
        run_script(work, record.get("apply"), version, roles, node)
        record.update(
            format=FORMAT,
            name=name,
            version=version,
            roles=roles,
            sha256=sha256,
            applied_at=time.time(),
            applied_monotonic=time.monotonic(),
            boot_id=boot_id(),
            replaced=[item["path"] for item in plan["replaced"]],
            added=plan["added"],
        )
        write_atomically(node.record_path(name), (json.dumps(record, indent=1) + "\n").encode())
    except BaseException:
        node.undo(name)
        node.drop(name)
        staged.unlink(missing_ok=True)  # a failed node keeps no staged upload
        raise
    staged.unlink(missing_ok=True)
    return {"result": "applied", "replaced": len(plan["replaced"]), "added": len(plan["added"])}


def revert(node: Node, name: str) -> dict[str, Any]:
    record = node.record(name)
    if record is None:
        cleaned = node.undo(name)
        node.drop(name)
        return {"result": "cleaned up an interrupted apply" if cleaned else "not applied"}
    node.undo(name)
    run_script(node.patches / name, record.get("revert"), record["version"], record["roles"], node)
    node.drop(name)
    return {"result": "reverted", "roles": record["roles"]}


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


def main(argv: list[str]) -> int:
    root, command, args = Path(argv[0]), argv[1], argv[2:]
    node = Node(root)
    try:
        if command == "state":
            out = state(node, json.loads(args[0]))
        elif command == "apply":
            name, version, staged, sha, roles, record = args
            node.patches.mkdir(parents=True, exist_ok=True)
            out = apply(
                node, name, version, Path(staged), sha, roles.split(","), json.loads(record)
            )
        elif command == "revert":
            out = revert(node, args[0])
        else:
            raise Refused(f"unknown command {command!r}")
    except (Refused, SAFE.Unsafe) as exc:
        sys.stderr.write(f"patch: {exc}\n")
        return 3
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
