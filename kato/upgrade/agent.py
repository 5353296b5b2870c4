"""The node side of releases and upgrades: a standalone program (standard library only),
shipped in the node agent's bundle (kato/remote/agent.py) and run on a node as
`python3 -S .../upgrade_agent.py ROOT COMMAND ARGS...` (ROOT is `/` on a node, a temporary
directory in the unit tests, which also run it as `python3 - ROOT ...`).

    facts                         the releases here: current, previous, each version's roles
                                  (staged and installed artifact sha256) and digest, free bytes
    stage VERSION DIGEST ROLE SHA256 FILE
                                  verify FILE, unpack it into RELEASES/VERSION/ROLE (through a
                                  temporary dir and one rename), mark it staged; never touches
                                  the current release; a role staged already is left as it is
    activate VERSION PLAN_JSON    run each role's install hook (with KATO_DATA_<NAME>=PATH from
                                  the plan's "env"), install its units (removing the
                                  old release's units it no longer has), then previous := current
                                  and current := VERSION, each link by one rename
    prune KEEP_JSON               remove every version but current, previous and KEEP

Layout: RELEASES/<version>/<role>/ (.kato-staged-sha256 once unpacked, .kato-artifact-sha256
once its hook ran), RELEASES/<version>/.kato-release.json (version, digest), and the links
RELEASES/current and RELEASES/previous.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

RELEASES = "var/lib/kato/releases"
UNITS = "etc/systemd/system"
STAGED = ".kato-staged-sha256"
INSTALLED = ".kato-artifact-sha256"
RELEASE_FILE = ".kato-release.json"
TMP = ".kato-tmp"
LINKS = ("current", "previous")


class Refused(Exception):
    """The command cannot go on; nothing was changed."""


def read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def link_target(path: Path) -> str | None:
    return os.readlink(path).rstrip("/").rsplit("/", 1)[-1] if path.is_symlink() else None


try:  # kato/remote/safe_write.py: shipped beside this program on a node, a module of kato here
    SAFE = importlib.import_module("safe_write")
except ImportError:
    SAFE = importlib.import_module("kato.remote.safe_write")


def write_safely(path: Path, text: str, mode: int = 0o644) -> None:
    """Write `path` the one safe way (kato/remote/safe_write.py): a symlink planted at it or in
    its directories (an artifact may carry one) is refused, never written through."""
    try:
        SAFE.write_file(str(path), [text.encode()], mode)
    except SAFE.Unsafe as exc:
        raise Refused(str(exc)) from None


def facts(root: Path) -> dict[str, Any]:
    releases = root / RELEASES
    versions: dict[str, Any] = {}
    if releases.is_dir():
        for entry in sorted(releases.iterdir()):
            if entry.name in LINKS or entry.is_symlink() or not entry.is_dir() or TMP in entry.name:
                continue
            roles = {
                role.name: {"staged": read(role / STAGED), "installed": read(role / INSTALLED)}
                for role in sorted(entry.iterdir())
                if role.is_dir() and TMP not in role.name
            }
            try:
                record = json.loads((entry / RELEASE_FILE).read_text())
            except (OSError, ValueError):
                record = {}
            versions[entry.name] = {"roles": roles, "digest": record.get("digest")}
    probe = releases if releases.exists() else root
    stat = os.statvfs(probe)
    return {
        "current": link_target(releases / "current"),
        "previous": link_target(releases / "previous"),
        "versions": versions,
        "free": stat.f_bavail * stat.f_frsize,
    }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stage(root: Path, version: str, digest: str, role: str, sha: str, file: Path) -> str:
    releases = root / RELEASES
    if link_target(releases / "current") == version:
        raise Refused(f"{version} is the current release here: staging never touches it")
    target = releases / version / role
    try:
        if read(target / STAGED) == sha:
            return f"{role} {version} is staged already"
        if sha256_of(file) != sha:
            raise Refused(f"the uploaded {role} artifact does not have sha256 {sha}: not staged")
        tmp = target.with_name(role + TMP)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        # GNU tar (the node's python3 may predate tarfile's extraction filters): it keeps
        # members inside tmp and, with --no-same-owner, owned by root.
        try:
            subprocess.run(
                ("tar", "-xzf", str(file), "-C", str(tmp), "--no-same-owner"), check=True
            )
            write_safely(tmp / STAGED, sha + "\n")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # no half-unpacked artifact stays behind
            raise
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        write_safely(
            releases / version / RELEASE_FILE, json.dumps({"version": version, "digest": digest})
        )
        return f"staged {role} {version}"
    finally:
        file.unlink(missing_ok=True)


def relink(releases: Path, name: str, version: str) -> None:
    tmp = releases / (name + TMP)
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(version, tmp)
    os.replace(tmp, releases / name)


def systemctl(root: Path, *args: str) -> None:
    if root == Path("/"):  # a unit test's ROOT has no systemd
        subprocess.run(("systemctl", *args), check=True)


def hook_env(base: dict[str, str], plan: dict[str, Any], role: str) -> dict[str, str]:
    """The hook's environment: ours plus the role's KATO_DATA_<NAME>=PATH from the plan (where
    its data dirs live now, after `kato relocate`); only KATO_DATA_ names are taken."""
    data = plan.get("env", {}).get(role, {})
    return {**base, **{k: str(v) for k, v in data.items() if k.startswith("KATO_DATA_")}}


def activate(root: Path, version: str, plan: dict[str, Any]) -> str:
    """plan: {"roles": {role: [units]}, "old_units": [units of the release being left],
    "env": {role: {KATO_DATA_<NAME>: path}}}."""
    releases = root / RELEASES
    missing = [
        r
        for r in plan["roles"]
        if not (read(releases / version / r / STAGED) or read(releases / version / r / INSTALLED))
    ]
    if missing:
        raise Refused(f"{version} is not staged here for {', '.join(missing)}: stage it first")
    units_dir = root / UNITS
    units_dir.mkdir(parents=True, exist_ok=True)
    wanted: list[str] = []
    for role, units in plan["roles"].items():
        role_dir = releases / version / role
        hook = role_dir / "hooks" / "install"
        if hook.exists() and root == Path("/"):
            env = hook_env(dict(os.environ), plan, role)
            subprocess.run((str(hook), version, str(role_dir)), check=True, env=env)
        sha = read(role_dir / STAGED) or read(role_dir / INSTALLED)
        write_safely(role_dir / INSTALLED, sha + "\n")
        for unit in units:
            text = (role_dir / "units" / unit).read_text()
            write_safely(units_dir / unit, text)
            wanted.append(unit)
    for unit in plan.get("old_units", []):
        if unit not in wanted and (units_dir / unit).exists():
            systemctl(root, "disable", "--quiet", "--", unit)
            (units_dir / unit).unlink()
    current = link_target(releases / "current")
    if current != version:
        if current is not None:
            relink(releases, "previous", current)
        relink(releases, "current", version)
    systemctl(root, "daemon-reload")
    if wanted:
        systemctl(root, "enable", "--quiet", "--", *wanted)
    return f"current {current} -> {version}" if current != version else f"{version} is current"


def prune(root: Path, keep: list[str]) -> list[str]:
    releases = root / RELEASES
    kept = set(keep) | {link_target(releases / n) for n in LINKS} - {None}
    removed = []
    for entry in sorted(releases.iterdir()) if releases.is_dir() else []:
        if entry.name in LINKS or entry.is_symlink() or entry.name in kept:
            continue
        shutil.rmtree(entry)
        removed.append(entry.name)
    return removed


def main(argv: list[str]) -> int:
    root, command, args = Path(argv[0]), argv[1], argv[2:]
    try:
        if command == "facts":
            print(json.dumps(facts(root)))
        elif command == "stage":
            print(stage(root, args[0], args[1], args[2], args[3], Path(args[4])))
        elif command == "activate":
            print(activate(root, args[0], json.loads(args[1])))
        elif command == "prune":
            print(json.dumps(prune(root, json.loads(args[0]))))
        else:
            raise Refused(f"unknown command {command!r}")
    except Refused as exc:
        print(f"kato upgrade agent: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
