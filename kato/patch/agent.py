"""The node side of patches: a standalone program (standard library only) kato runs on a node
as `python3 - ROOT COMMAND ARGS...` with this file on stdin.

    state UNITS_JSON        what is applied here, whether each role restarted since (JSON)
    apply NAME VERSION STAGED SHA256 ROLES RECORD_JSON
    receive-apply NAME VERSION STAGED SHA256 ROLES RECORD_JSON
                            the artifact on stdin, written to STAGED first (its directory
                            0700, never through a link), then `apply`: one call, not two
    revert NAME             restore the replaced files, run the revert script, drop the record

A patch NAME lives in PATCHES/NAME/ while it is applied: artifact/ (the unpacked artifact),
backup/ (the files it replaced, byte for byte) and undo.json (what to restore and what to
delete), written before the first file is replaced. PATCHES/NAME.json, the record, is written
last. A directory without a record is an apply or revert that was interrupted: both commands
undo it first, so a node killed at any point ends fully patched or fully unpatched.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

try:  # kato/patch/records.py: shipped beside this program on a node, a module of kato here
    RECORDS = importlib.import_module("patch_records")
except ImportError:
    RECORDS = importlib.import_module("kato.patch.records")
if TYPE_CHECKING:  # the same names, as mypy sees them
    from kato.patch.records import (
        FORMAT,
        SAFE,
        Node,
        Refused,
        boot_id,
        copy_into_place,
        sha256_of,
        write_atomically,
    )  # fmt: skip
else:
    FORMAT, SAFE, Node, Refused = RECORDS.FORMAT, RECORDS.SAFE, RECORDS.Node, RECORDS.Refused
    copy_into_place, sha256_of = RECORDS.copy_into_place, RECORDS.sha256_of
    write_atomically, boot_id = RECORDS.write_atomically, RECORDS.boot_id


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


def receive(staged: Path) -> None:
    """stdin to STAGED (0600) as kato's safe writes do; the staging dir made 0700 if missing."""
    os.close(SAFE.open_dir(str(staged.parent.parent), create=0o755))
    os.close(SAFE.open_dir(str(staged.parent), create=0o700))
    SAFE.write_file(str(staged), SAFE.stdin_chunks(), 0o600)


def main(argv: list[str]) -> int:
    root, command, args = Path(argv[0]), argv[1], argv[2:]
    node = Node(root)
    try:
        if command == "state":
            out = RECORDS.state(node, json.loads(args[0]))
        elif command in ("apply", "receive-apply"):
            name, version, staged, sha, roles, record = args
            if command == "receive-apply":
                receive(Path(staged))
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
