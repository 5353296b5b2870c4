"""The node side of facts: a standalone program (standard library only) the node agent runs as
`python3 node_facts.py REQUEST_JSON [ROOT]`; it prints ONE JSON document with everything kato
asked about the node, so a node's facts cost one round trip.

REQUEST_JSON (every key optional):
    roles    {role: {"units": [unit...], "health": {"timeout": s, "http"|"tcp"|"command": ...}}}
             -> "units" {role: {unit: state}}, "health" {role: null | "what is wrong"}
    space    [path...]   -> "space" {path: {"free", "size", "inodes", "inodes_free", "exists"}}
                            (the nearest existing parent's filesystem when the path does not
                            exist)
    sizes    [path...]   -> "sizes" {path: bytes used by the tree, or null when missing}
    patches  {role: [unit...]} -> "patches": what is applied (patch_records.py)
    lock     true        -> "lock" {"record": the lock file or null, "now": the node's time}
    datadirs true        -> "datadirs": where data dirs live (datadirs.py's record, or
                            {"error": why}); "space" then covers every moved data dir too
    definitions true     -> "definitions" {role: the text of current/<role>/role.yaml}: the
                            role definitions of the release the node runs ({} without one)
    dirs     [path...]   -> "dirs" {path: {"mode", "owner" (uid:gid), "size" (du -sb), "dir"}
                            or null when missing}: what a data command needs of its data dirs
    dirs_of  {role: [name...]} (with datadirs) -> "dirs" also covers where the record has
                            moved those data dirs, so one call answers for relocated ones too
    moved_parents true   (with datadirs) -> "space" also covers each moved data dir's parent
                            (where an import stages beside it)
Always: "format", "boot_id", "version" (the current platform release, or null), "now".
ROOT (default /) prefixes every path, so the unit tests run it on a temporary tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

FORMAT = 1
CHECK_TIMEOUT = 5.0
RELEASES = "var/lib/kato/releases"
LOCK = "run/kato/lock"
BOOT_ID = "proc/sys/kernel/random/boot_id"
UNKNOWN = "unknown"  # a unit's state systemd did not say


def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def unit_states(units: list[str]) -> dict[str, str]:
    """The units' states, asked of systemd now (parsed by `parse_states`)."""
    if not units:
        return {}
    try:
        done = subprocess.run(states_argv(units), capture_output=True, text=True, timeout=30)
        said = done.stdout
    except (OSError, subprocess.SubprocessError):  # no systemd here: every state is unknown
        said = ""
    return parse_states(units, said)


def states_argv(units: list[str]) -> tuple[str, ...]:
    return ("systemctl", "is-active", "--", *units)


def parse_states(units: list[str], said: str) -> dict[str, str]:
    """systemctl is-active prints one state per unit, in order, whatever its exit status; a
    unit it printed nothing for is "unknown". The one parser of that output: kato's side
    (kato/facts.py) and the other node programs use it too."""
    states = said.split()
    return {u: (states[i] if i < len(states) else UNKNOWN) for i, u in enumerate(units)}


def probe(health: dict[str, Any]) -> str | None:
    """None when the role's health check passes, else what failed (one line)."""
    import socket  # only when asked: most of this program's start-up otherwise (other
    import urllib.error  # node programs load this one for its parser alone)
    import urllib.request

    limit = min(float(health.get("timeout", CHECK_TIMEOUT)), CHECK_TIMEOUT)
    try:
        if health.get("http"):
            with urllib.request.urlopen(health["http"], timeout=limit) as reply:
                reply.read(1 << 16)
            return None
        if health.get("tcp"):
            host, port = health["tcp"]
            socket.create_connection((host, int(port)), timeout=limit).close()
            return None
        argv = health.get("command") or ["false"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
        if done.returncode == 0:
            return None
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        return lines[-1][-200:] if lines else f"exit {done.returncode}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} from {health['http']}"
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"{type(exc).__name__}: {reason}"[-200:]


def role_facts(roles: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str | None]]:
    """Every role's unit states; the health check only of the roles whose units all run (in
    parallel: each waits up to its timeout)."""
    units = {role: unit_states(list(spec.get("units", []))) for role, spec in roles.items()}
    health: dict[str, str | None] = {}
    running = [r for r in roles if all(s == "active" for s in units[r].values())]
    for role in roles:
        if role not in running:
            down = [u for u, s in units[role].items() if s != "active"]
            health[role] = f"not running ({', '.join(down)})"
    if running:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(running)) as pool:
            found = pool.map(lambda r: probe(roles[r].get("health", {})), running)
            health.update(zip(running, found, strict=True))
    return units, health


def space(root: str, paths: list[str]) -> dict[str, Any]:
    out = {}
    for path in paths:
        probe_path = root + path
        while not os.path.exists(probe_path):
            probe_path = os.path.dirname(probe_path) or "/"
        st = os.statvfs(probe_path)
        out[path] = {
            "free": st.f_bavail * st.f_frsize,
            "size": st.f_blocks * st.f_frsize,
            "inodes": st.f_files,
            "inodes_free": st.f_favail,
            "exists": os.path.isdir(root + path),
        }
    return out


def tree_size(path: str) -> int | None:
    """Bytes used by the files under path (each inode once; symlinks not followed)."""
    if not os.path.isdir(path):
        return None
    seen, total = set(), 0
    for top, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(top, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def data_dirs(root: str) -> dict[str, Any]:
    """The data-dir record, read by datadirs.py (shipped beside this program)."""
    from pathlib import Path

    import datadirs  # type: ignore[import-not-found]

    try:
        record: dict[str, Any] = datadirs.read_record(Path(root))
    except (datadirs.Refused, OSError) as exc:
        return {"error": str(exc)}
    return record


def dir_facts(path: str) -> dict[str, Any] | None:
    """A data dir's mode, owner and apparent size (du -sb: the bytes an export reads)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    du = subprocess.run(("du", "-sb", path), capture_output=True, text=True)
    size = int(du.stdout.split()[0]) if du.returncode == 0 and du.stdout else 0
    return {
        "mode": f"0{st.st_mode & 0o7777:o}",
        "owner": f"{st.st_uid}:{st.st_gid}",
        "size": size,
        "dir": os.path.isdir(path),
    }


def moved(record: dict[str, Any], wanted: dict[str, list[str]] | None = None) -> list[str]:
    """The paths the record moved data dirs to (only `wanted` role -> names, when given)."""
    found = []
    for role, names in record.get("data_dirs", {}).items():
        for name, entry in names.items():
            if wanted is None or name in wanted.get(role, ()):
                found.append(entry["path"])
    return found


def definitions(current: str) -> dict[str, str]:
    """Each role's role.yaml as the node's current release carries it (a release's artifacts
    hold their role's definition: docs/release-repository.md)."""
    if not os.path.isdir(current):
        return {}
    found = {}
    for role in sorted(os.listdir(current)):
        text = read(os.path.join(current, role, "role.yaml"))
        if text is not None:
            found[role] = text
    return found


def facts(request: dict[str, Any], root: str = "/") -> dict[str, Any]:
    root = root.rstrip("/") + "/"
    current = root + RELEASES + "/current"
    out: dict[str, Any] = {
        "format": FORMAT,
        "now": time.time(),
        "boot_id": (read(root + BOOT_ID) or "").strip(),
        "version": os.path.basename(os.readlink(current)) if os.path.islink(current) else None,
    }
    if request.get("definitions"):
        out["definitions"] = definitions(current)
    if request.get("roles"):
        out["units"], out["health"] = role_facts(request["roles"])
    paths = list(request.get("space") or [])
    dirs = list(request.get("dirs") or [])
    if request.get("datadirs"):
        out["datadirs"] = record = data_dirs(root)
        paths += moved(record)
        if request.get("moved_parents"):
            paths += [os.path.dirname(p) or "/" for p in moved(record)]
        if request.get("dirs_of"):
            dirs += moved(record, request["dirs_of"])
    if paths:
        out["space"] = space(root, paths)
    if dirs:
        out["dirs"] = {p: dir_facts(root + p.lstrip("/")) for p in dict.fromkeys(dirs)}
    if request.get("sizes"):
        out["sizes"] = {p: tree_size(root + p.lstrip("/")) for p in request["sizes"]}
    if request.get("patches") is not None:
        from pathlib import Path

        import patch_records  # type: ignore[import-not-found]  # shipped beside this program

        node = patch_records.Node(Path(root))
        out["patches"] = patch_records.state(node, request["patches"])
    if request.get("lock"):
        text = read(root + LOCK)
        try:
            out["lock"] = {"record": json.loads(text) if text else None, "now": time.time()}
        except ValueError:
            out["lock"] = {
                "record": {"id": "corrupt", "heartbeat": 0, "ttl": 0},
                "now": time.time(),
            }
    return out


def main(argv: list[str]) -> int:
    request = json.loads(argv[0]) if argv else {}
    sys.stdout.write(json.dumps(facts(request, argv[1] if len(argv) > 1 else "/")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
