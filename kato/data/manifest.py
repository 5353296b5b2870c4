"""The archive's manifest (MANIFEST.json, its first member): what each member is and holds."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

FORMAT = 2  # 2: each member's entries (files, dirs and links of a tree) are listed
FORMATS = (1, 2)  # what this kato reads
NAME = "MANIFEST.json"
# The manifest's fixed size in the archive: the space export reserves before any data and
# fills in at the end (the sizes and checksums are known only then). ~300 bytes per member.
SLOT = 256 * 1024
MAX_MEMBERS = 512
TYPES = ("tree", "stream")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_OWNER = re.compile(r"[0-9]+:[0-9]+")
_WORD = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


class ManifestProblem(ValueError):
    """What is wrong with a manifest, in words a user can act on."""


@dataclass(frozen=True)
class Member:
    """One data dir of one role on one node, as a file in the archive."""

    name: str  # the member's path in the archive: data/<node>/<role>/<data dir>.<suffix>
    node: str
    role: str
    data_dir: str  # the data dir's name in role.yaml (services, droplets, ...)
    path: str  # where it lived on the node
    type: str  # tree: a tar of the directory; stream: the role's own dump
    size: int
    mode: str  # the data dir's own mode, octal ("0700")
    owner: str  # the data dir's numeric owner, "uid:gid"
    sha256: str
    # format 2: a tree's files, dirs and links (0 for a dump), so an import checks its limits
    # and the targets' inodes from the manifest and verifies each member while it stages it
    entries: int | None = None


@dataclass(frozen=True)
class Manifest:
    format: int
    cluster: str
    platform_version: str | None
    kato_version: str
    created: str  # UTC, ISO 8601
    members: tuple[Member, ...]

    def encode(self) -> bytes:
        """The manifest's JSON, with its own checksum, padded with spaces to exactly SLOT
        bytes (its frame has no checksum of its own: a flipped bit must still show)."""
        if len(self.members) > MAX_MEMBERS:
            raise ManifestProblem(f"{len(self.members)} members, more than {MAX_MEMBERS}")
        document = asdict(self)
        if self.format < 2:
            for member in document["members"]:
                del member["entries"]
        document["checksum"] = _checksum(document)
        text = json.dumps(document, indent=1, sort_keys=True).encode()
        if len(text) > SLOT:
            raise ManifestProblem(
                f"the manifest needs {len(text)} bytes, more than the {SLOT} reserved for it "
                f"({len(self.members)} members)"
            )
        return text + b" " * (SLOT - len(text))

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)


def _checksum(document: Mapping[str, Any]) -> str:
    """sha256 of the manifest's content without its checksum, in a canonical form."""
    content = {k: v for k, v in document.items() if k != "checksum"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def member_name(node: str, role: str, data_dir: str, kind: str) -> str:
    return f"data/{node}/{role}/{data_dir}.{'tar' if kind == 'tree' else 'dump'}"


def decode(data: bytes) -> Manifest:
    """A manifest from its bytes; ManifestProblem names the first thing wrong."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestProblem(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ManifestProblem("not a JSON object")
    fmt = raw.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise ManifestProblem("format: missing or not a number")
    if fmt > FORMAT:
        raise ManifestProblem(
            f"format {fmt} is newer than this kato understands (format {FORMAT}): "
            "upgrade kato on this machine to read it"
        )
    if fmt not in FORMATS:
        raise ManifestProblem(f"format: {fmt} is not a known format")
    for key in ("cluster", "kato_version", "created"):
        _text(raw, key, "manifest")
    version = raw.get("platform_version")
    if version is not None and not isinstance(version, str):
        raise ManifestProblem("platform_version: must be text or null")
    members = raw.get("members")
    if not isinstance(members, list):
        raise ManifestProblem("members: missing or not a list")
    if len(members) > MAX_MEMBERS:
        raise ManifestProblem(f"members: {len(members)} is more than the limit {MAX_MEMBERS}")
    parsed = tuple(_member(m, i, fmt) for i, m in enumerate(members))
    names = [m.name for m in parsed]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ManifestProblem(f"members: {duplicate} is listed twice")
    if raw.get("checksum") != _checksum(raw):
        raise ManifestProblem("checksum: the manifest does not match its checksum (edited?)")
    return Manifest(fmt, raw["cluster"], version, raw["kato_version"], raw["created"], parsed)


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ManifestProblem(f"{where}: {key} missing or not text")
    return value


def _member(raw: object, index: int, fmt: int) -> Member:
    where = f"members[{index}]"
    if not isinstance(raw, dict):
        raise ManifestProblem(f"{where}: not an object")
    fields = {k: _text(raw, k, where) for k in ("name", "node", "role", "data_dir", "path")}
    for key in ("node", "role", "data_dir"):
        if not _WORD.fullmatch(fields[key]):
            raise ManifestProblem(f"{where}: {key} {fields[key]!r} is not a plain name")
    kind = raw.get("type")
    if kind not in TYPES:
        raise ManifestProblem(f"{where}: type {kind!r} is not one of {', '.join(TYPES)}")
    expected = member_name(fields["node"], fields["role"], fields["data_dir"], kind)
    if fields["name"] != expected:
        raise ManifestProblem(f"{where}: name {fields['name']!r} should be {expected!r}")
    if not fields["path"].startswith("/") or "/../" in fields["path"] + "/":
        raise ManifestProblem(f"{where}: path {fields['path']!r} is not a clean absolute path")
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestProblem(f"{where}: size missing or not a whole number")
    mode, owner, sha = raw.get("mode"), raw.get("owner"), raw.get("sha256")
    if not isinstance(mode, str) or not re.fullmatch(r"0[0-7]{3,4}", mode):
        raise ManifestProblem(f"{where}: mode {mode!r} is not an octal mode like '0755'")
    if not isinstance(owner, str) or not _OWNER.fullmatch(owner):
        raise ManifestProblem(f"{where}: owner {owner!r} is not numeric 'uid:gid'")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise ManifestProblem(f"{where}: sha256 missing or not 64 hex digits")
    entries = raw.get("entries") if fmt >= 2 else None
    if fmt >= 2 and (not isinstance(entries, int) or isinstance(entries, bool) or entries < 0):
        raise ManifestProblem(f"{where}: entries missing or not a whole number (format {fmt})")
    if kind == "stream" and entries:
        raise ManifestProblem(f"{where}: entries {entries} for a stream (a dump has none)")
    return Member(size=size, mode=mode, owner=owner, sha256=sha, type=kind, entries=entries,
                  **fields)  # fmt: skip
