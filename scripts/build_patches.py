"""Build a patch repository from patch sources (run by scripts/build-patches).

A source is a directory NAME/ holding patch.yaml (description, severity, roles, applies_to,
optional apply, revert and edits), optional files/ROLE/... laid over the role as they are, and
the apply and revert scripts it names. An edit {file: ROLE/PATH, replace: OLD, with: NEW} makes
files/ROLE/PATH from the role's component of the first version in applies_to (as
scripts/build-release makes it), with OLD (found exactly once) replaced by NEW. The artifact
NAME.tar.gz is reproducible, like the release artifacts. The format is in docs/patch.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import yaml
from build_release import (
    DEFAULT_EPOCH,
    REPO_ROOT,
    BuildError,
    IndentedDumper,
    Member,
    _tree,
    role_files,
    tar_gz,
    write_file,
)

from kato.errors import KatoError
from kato.patch.repository import FORMAT, INDEX_FILE, PatchIndexInvalid, parse_patch

PLATFORM = "kato-reference"
SOURCE_KEYS = {"description", "severity", "roles", "applies_to", "apply", "revert", "edits"}


def edited(edit: object, roles_dir: Path, version: str, where: str) -> Member:
    if not isinstance(edit, dict) or set(edit) != {"file", "replace", "with"}:
        raise BuildError(f"{where}: an edit is a mapping of exactly file, replace and with")
    role, _, path = str(edit["file"]).partition("/")
    base = {m.name: m for m in role_files(roles_dir / role, version)}
    if path not in base:
        raise BuildError(f"{where}: {edit['file']}: no such file in {role} {version}")
    text = base[path].data.decode()
    if text.count(edit["replace"]) != 1:
        raise BuildError(f"{where}: {edit['file']}: {edit['replace']!r} is not there exactly once")
    data = text.replace(edit["replace"], edit["with"]).encode()
    return Member(f"files/{role}/{path}", data, base[path].executable)


def patch_members(source: Path, spec: dict[str, object], roles_dir: Path) -> list[Member]:
    members = {
        f"files/{name}": Member(f"files/{name}", path.read_bytes(), os.access(path, os.X_OK))
        for name, path in _tree(source / "files").items()
    }
    versions = spec.get("applies_to") or [""]
    assert isinstance(versions, list)
    for edit in spec.get("edits") or []:  # type: ignore[attr-defined]
        member = edited(edit, roles_dir, str(versions[0]), f"{source}/patch.yaml")
        members[member.name] = member
    for key in ("apply", "revert"):
        script = spec.get(key)
        if isinstance(script, str) and script not in members:
            path = source / script
            if not path.is_file():
                raise BuildError(f"{source}/patch.yaml: {key}: {script} is missing")
            members[script] = Member(script, path.read_bytes(), True)
    return [members[name] for name in sorted(members)]


def build_patch(source: Path, dest: Path, roles_dir: Path, mtime: int) -> dict[str, object]:
    spec = yaml.safe_load((source / "patch.yaml").read_text())
    if not isinstance(spec, dict) or set(spec) - SOURCE_KEYS:
        raise BuildError(f"{source}/patch.yaml: a mapping of {', '.join(sorted(SOURCE_KEYS))}")
    data = tar_gz(patch_members(source, spec, roles_dir), mtime)
    artifact = f"{source.name}.tar.gz"
    write_file(dest / artifact, data)
    entry = {"name": source.name, **{k: v for k, v in spec.items() if k != "edits"}}
    entry.update(artifact=artifact, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    problems: list[str] = []
    parse_patch(entry, f"{source.name}", problems)
    if problems:
        raise PatchIndexInvalid(str(source), problems)
    return entry


def build(sources: Path, dest: Path, roles_dir: Path, mtime: int) -> list[dict[str, object]]:
    entries = [
        build_patch(source, dest, roles_dir, mtime)
        for source in sorted(sources.iterdir())
        if (source / "patch.yaml").is_file()
    ]
    keep = {str(e["artifact"]) for e in entries} | {INDEX_FILE}
    for stale in dest.iterdir():
        if stale.is_file() and stale.name not in keep:
            stale.unlink()  # the artifact of a patch that is gone
    document = {"format": FORMAT, "platform": PLATFORM, "patches": entries}
    text = yaml.dump(document, Dumper=IndentedDumper, sort_keys=False, width=200)
    write_file(dest / INDEX_FILE, text.encode())
    return entries


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/build-patches", description=__doc__.split("\n")[0]
    )
    parser.add_argument("dest", nargs="?", type=Path, default=Path("build/patches"))
    parser.add_argument("--source", type=Path, default=REPO_ROOT / "patches", help="patch sources")
    parser.add_argument("--roles", type=Path, default=REPO_ROOT / "roles", help="roles dir")
    args = parser.parse_args(argv)
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    try:
        args.dest.mkdir(parents=True, exist_ok=True)
        entries = build(args.source, args.dest, args.roles, mtime)
    except (KatoError, BuildError, OSError, yaml.YAMLError) as exc:
        print(f"build-patches: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    print(f"{args.dest}: {len(entries)} patches", file=sys.stderr)
    print(args.dest / INDEX_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
