"""The node side of data-dir locations: a standalone program (standard library only) kato runs
on a node as `python3 - ROOT COMMAND ARGS...` with this file on stdin.

    locations                     the record (/var/lib/kato/datadirs.yaml) as JSON
    record ROLE NAME DECLARED PATH UNITS_JSON
                                  ROLE's data dir NAME lives at PATH from now on (DECLARED:
                                  the role's path in role.yaml); writes the units' drop-ins,
                                  the record last, and reloads systemd
    forget ROLE NAME PATH         the old copy PATH of ROLE's NAME is gone (kato relocate cleanup)
    moving ROLE NAME DEST PHASE   a relocation of ROLE's NAME to DEST is under way, in PHASE
                                  (copying, stopped); `moving ROLE NAME - -` ends it
    probe PATH...                 per path: exists, kind, filesystem, mount, size, free (JSON)

The record is JSON, which is also YAML: {"format": 1, "data_dirs": {ROLE: {NAME: {"path":
PATH, "declared": DECLARED}}}, "previous": {ROLE: {NAME: [OLD PATH...]}}, "moving": {ROLE:
{NAME: {"dest": DEST, "phase": PHASE}}}}. A data dir at its declared path has no entry.
Every file is written the one safe way (kato/remote/safe_write.py: its directory walked
without following a link, a new file under an unpredictable name, fsynced, renamed over the old
one); a symlink in its place or in its path is refused, never followed. ROOT prefixes every
node path, so the program is tested on temporary directories.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

FORMAT = 1
RECORD = "var/lib/kato/datadirs.yaml"
UNIT_DIR = "etc/systemd/system"
DROP_IN = "50-kato-datadirs.conf"
SAFE_PATH = re.compile(r"^(/[A-Za-z0-9._+-]+)+$")


class Refused(Exception):
    """The command cannot go on; nothing was changed."""


try:  # kato/remote/safe_write.py: shipped beside this program on a node, a module of kato here
    SAFE = importlib.import_module("safe_write")
except ImportError:
    SAFE = importlib.import_module("kato.remote.safe_write")


def write_safely(path: Path, text: str, mode: int = 0o644) -> None:
    """Write `path` the one safe way (kato/remote/safe_write.py); a re-run changes nothing."""
    if read_text(path) == text:
        return
    SAFE.write_file(str(path), [text.encode()], mode, create_dirs=0o755)


def read_text(path: Path) -> str | None:
    """The text of file `path` (None when there is none); a symlink there is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused(f"{path} is a symbolic link; kato never reads through one") from None
        raise
    with os.fdopen(fd, encoding="utf-8") as handle:
        return handle.read()


def remove_safely(path: Path) -> None:
    """Remove the file (or link) `path`, its directory reached without following a link."""
    dir_fd = SAFE.open_dir(str(path.parent))
    try:
        os.unlink(path.name, dir_fd=dir_fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_record(root: Path) -> dict[str, Any]:
    path = root / RECORD
    text = read_text(path)
    if text is None:
        return {"format": FORMAT, "data_dirs": {}, "previous": {}, "moving": {}}
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise Refused(f"{path} is not a kato data-dir record ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise Refused(f"{path} is not a format-{FORMAT} kato data-dir record")
    if not isinstance(record.get("data_dirs"), dict):
        raise Refused(f"{path}: data_dirs must be a mapping")
    for key in ("previous", "moving"):
        if not isinstance(record.setdefault(key, {}), dict):
            raise Refused(f"{path}: {key} must be a mapping")
    return record


def drop_in_text(role: str, moved: dict[str, dict[str, str]]) -> str:
    """The units of ROLE see each moved data dir at its declared path (a bind mount)."""
    lines = [
        f"# written by kato relocate: where role {role}'s data dirs live "
        "(/var/lib/kato/datadirs.yaml); do not edit",
        "[Unit]",
    ]
    lines += [f"RequiresMountsFor={moved[name]['path']}" for name in sorted(moved)]
    lines.append("[Service]")
    lines += [
        f"BindPaths={moved[name]['path']}:{moved[name]['declared']}" for name in sorted(moved)
    ]
    return "\n".join(lines) + "\n"


def check_path(value: str) -> None:
    parts = value.split("/")
    if not SAFE_PATH.match(value) or "." in parts or ".." in parts:
        raise Refused(f"{value!r} is not a plain absolute path")


def record(
    root: Path, role: str, name: str, declared: str, path: str, units: list[str]
) -> dict[str, Any]:
    """Point ROLE's data dir NAME at PATH: drop-ins first, the record last (the switch)."""
    check_path(declared)
    check_path(path)
    current = read_record(root)
    dirs: dict[str, dict[str, dict[str, str]]] = current["data_dirs"]
    before = dirs.get(role, {}).get(name, {}).get("path", declared)
    previous = current["previous"].setdefault(role, {}).setdefault(name, [])
    if before != path and before not in previous:
        previous.append(before)
    if path in previous:
        previous.remove(path)
    if not previous:
        current["previous"][role].pop(name)
    if not current["previous"][role]:
        current["previous"].pop(role)
    if path == declared:
        dirs.get(role, {}).pop(name, None)
    else:
        dirs.setdefault(role, {})[name] = {"path": path, "declared": declared}
    if not dirs.get(role):
        dirs.pop(role, None)
    write_drop_ins(root, role, dirs.get(role, {}), units)
    write_safely(root / RECORD, json.dumps(current, indent=2, sort_keys=True) + "\n")
    return current


def forget(root: Path, role: str, name: str, path: str) -> dict[str, Any]:
    """PATH, an old copy of ROLE's NAME, was removed: drop it from the record."""
    current = read_record(root)
    olds = current["previous"].get(role, {}).get(name, [])
    if path in olds:
        olds.remove(path)
        if not olds:
            current["previous"][role].pop(name)
        if not current["previous"][role]:
            current["previous"].pop(role)
        write_safely(root / RECORD, json.dumps(current, indent=2, sort_keys=True) + "\n")
    return current


def moving(root: Path, role: str, name: str, dest: str, phase: str) -> dict[str, Any]:
    """Note (or, with DEST "-", end) a relocation under way, so a re-run knows where it was."""
    current = read_record(root)
    entries = current["moving"]
    if dest == "-":
        entries.get(role, {}).pop(name, None)
        if not entries.get(role):
            entries.pop(role, None)
    else:
        check_path(dest)
        entries.setdefault(role, {})[name] = {"dest": dest, "phase": phase}
    write_safely(root / RECORD, json.dumps(current, indent=2, sort_keys=True) + "\n")
    return current


def write_drop_ins(
    root: Path, role: str, moved: dict[str, dict[str, str]], units: list[str]
) -> None:
    for unit in units:
        target = root / UNIT_DIR / f"{unit}.d" / DROP_IN
        if moved:
            write_safely(target, drop_in_text(role, moved))
        elif target.is_symlink() or target.is_file():
            remove_safely(target)
    if root == Path("/"):
        subprocess.run(["systemctl", "daemon-reload"], check=True)


def probe(root: Path, paths: list[str]) -> dict[str, Any]:
    mounts = _mounts(root)
    return {path: _probe_one(root, path, mounts) for path in paths}


def _probe_one(root: Path, path: str, mounts: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    full = root / path.lstrip("/")
    existing = full
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    st = os.statvfs(existing)
    out: dict[str, Any] = {
        "exists": full.exists() or full.is_symlink(),
        "kind": _kind(full),
        "free": st.f_bavail * st.f_frsize,
        "total": st.f_blocks * st.f_frsize,
        "device": os.stat(existing).st_dev,
    }
    mount = _mount_of("/" + str(existing.relative_to(root)).strip("."), mounts)
    out.update(mount)
    if out["kind"] == "dir":
        used, files, names = _usage(full)
        out.update(used=used, files=files, names=names)
    return out


def _kind(path: Path) -> str:
    if path.is_symlink():
        return "symlink"
    if path.is_dir():
        return "dir"
    return "missing" if not path.exists() else "other"


def _usage(top: Path) -> tuple[int, int, list[str]]:
    """Bytes allocated, files, and (the first 20) top-level names under top (symlinks never
    followed, hard-linked files counted once)."""
    used = files = 0
    seen: set[tuple[int, int]] = set()
    for base, dirs, names in os.walk(top):
        for entry in (*dirs, *names):
            st = os.lstat(os.path.join(base, entry))
            if (st.st_dev, st.st_ino) in seen:
                continue
            if st.st_nlink > 1:
                seen.add((st.st_dev, st.st_ino))
            used += st.st_blocks * 512
            files += 1
    return used, files, sorted(os.listdir(top))[:20]


def _mounts(root: Path) -> list[tuple[str, str, str, str]]:
    """(mount point, fs type, source, options) of every mount this process sees."""
    found = []
    try:
        text = (root / "proc/self/mountinfo").read_text(encoding="utf-8")
    except OSError:
        return [("/", "unknown", "unknown", "")]
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, extra = left.split(), right.split()
        if len(fields) < 6 or len(extra) < 3:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        found.append((point, extra[0], extra[1], f"{fields[5]},{extra[2]}"))
    return found


def _mount_of(path: str, mounts: list[tuple[str, str, str, str]]) -> dict[str, str]:
    best = ("/", "unknown", "unknown", "")
    for point, fstype, source, options in mounts:
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fstype, source, options)
    return {"mount": best[0], "fstype": best[1], "source": best[2], "options": best[3]}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: datadirs ROOT locations|record|probe ARGS...", file=sys.stderr)
        return 2
    root, command, args = Path(argv[0]), argv[1], argv[2:]
    try:
        if command == "locations" and not args:
            result: Any = read_record(root)
        elif command == "record" and len(args) == 5:
            role, name, declared, path, units = args
            result = record(root, role, name, declared, path, json.loads(units))
        elif command == "moving" and len(args) == 4:
            result = moving(root, args[0], args[1], args[2], args[3])
        elif command == "forget" and len(args) == 3:
            result = forget(root, args[0], args[1], args[2])
        elif command == "probe":
            result = probe(root, args)
        else:
            print(f"datadirs: unknown command or arguments: {command}", file=sys.stderr)
            return 2
    except (Refused, SAFE.Unsafe, OSError) as exc:
        print(f"datadirs: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
