"""Patch repositories: read and validate index.yaml, fetch a patch's artifact verified.

The format (format: 1) is documented in docs/patch.md; locations are read by kato/repos.py.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kato import repos
from kato.errors import KatoError, UsageError
from kato.release import (
    PLATFORM_PATTERN,
    ROLE_PATTERN,
    SHA256_PATTERN,
    VERSION_PATTERN,
    ChecksumMismatch,
)

FORMAT = 1
INDEX_FILE = "index.yaml"
SEVERITIES = ("required", "recommended", "optional")
NAME_PATTERN = re.compile(r"\A[a-z][a-z0-9-]{0,62}\Z")
KEYS = {"name", "description", "severity", "roles", "applies_to", "artifact", "sha256", "size"}
OPTIONAL = {"apply", "revert"}


class PatchIndexInvalid(UsageError):
    """index.yaml of a patch repository is wrong: every problem, each with its field's path."""

    def __init__(self, repo: str, problems: Iterable[str]) -> None:
        self.repo = repo
        self.problems = tuple(problems)
        listing = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(
            f"the patch repository {repo} is not valid:\n{listing}",
            hint="docs/patch.md describes its format; scripts/build-patches writes a valid one",
        )


class PatchChecksumMismatch(ChecksumMismatch):
    """A fetched patch artifact is not what index.yaml says (exit 1, as for releases)."""

    def __init__(self, name: str, expected: str, actual: str, what: str = "sha256") -> None:
        super().__init__(name, expected, actual, what)
        self.message = (
            f"the artifact of patch {name} has {what} {actual}, index.yaml says {expected}"
        )
        self.args = (self.message,)
        self.hint = (
            "the artifact was damaged or changed after index.yaml was written; no node was "
            "touched: fetch again or rebuild the patch repository"
        )


@dataclass(frozen=True)
class Patch:
    name: str
    description: str
    severity: str
    roles: tuple[str, ...]
    applies_to: tuple[str, ...]
    artifact: str
    sha256: str
    size: int
    apply: str | None = None
    revert: str | None = None


@dataclass(frozen=True)
class PatchIndex:
    platform: str
    patches: tuple[Patch, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.patches)

    def chosen(self, names: list[str] | None) -> tuple[Patch, ...]:
        """The named patches (every one when none is named); an unknown name is exit 2."""
        if not names:
            return self.patches
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise UsageError(
                f"the patch repository has no patch named {', '.join(unknown)}",
                hint=f"known patches: {', '.join(self.names) or 'none'} (see kato patch status)",
            )
        return tuple(p for p in self.patches if p.name in names)


@dataclass(frozen=True)
class Fetched:
    """A verified artifact on this machine and the files it lays over each role."""

    patch: Patch
    path: Path
    files: dict[str, tuple[str, ...]] = field(default_factory=dict)


def load_index(repo: str | Path) -> PatchIndex:
    raw = repos.read_yaml(repo, INDEX_FILE, PatchIndexInvalid)
    problems: list[str] = []
    index = parse_index(raw, problems)
    if index is None or problems:
        raise PatchIndexInvalid(str(repo), problems)
    return index


def parse_index(raw: object, problems: list[str]) -> PatchIndex | None:
    where = INDEX_FILE
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping of format, platform and patches")
        return None
    for key in sorted(set(raw) - {"format", "platform", "patches"}, key=str):
        problems.append(f"{where}: {key}: unknown key (known: format, platform, patches)")
    if raw.get("format") != FORMAT or isinstance(raw.get("format"), bool):
        problems.append(f"{where}: format: must be {FORMAT}, not {raw.get('format')!r}")
    platform = raw.get("platform")
    if not isinstance(platform, str) or not PLATFORM_PATTERN.match(platform):
        problems.append(f"{where}: platform: must be a lower-case name, not {platform!r}")
    items = raw.get("patches")
    if not isinstance(items, list):
        problems.append(f"{where}: patches: must be a list (it may be empty)")
        return None
    patches: list[Patch] = []
    for number, item in enumerate(items):
        patch = parse_patch(item, f"{where}: patches[{number}]", problems)
        if patch is not None and patch.name in (p.name for p in patches):
            problems.append(f"{where}: patches[{number}].name: {patch.name} is listed twice")
        elif patch is not None:
            patches.append(patch)
    if problems or not isinstance(platform, str):
        return None
    return PatchIndex(platform, tuple(patches))


def parse_patch(raw: object, where: str, problems: list[str]) -> Patch | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    before = len(problems)
    for key in sorted(set(raw) - KEYS - OPTIONAL, key=str):
        problems.append(f"{where}.{key}: unknown key")
    for key in sorted(KEYS - set(raw)):
        problems.append(f"{where}.{key}: required")
    if len(problems) > before:
        return None
    check(raw["name"], NAME_PATTERN, f"{where}.name", "a lower-case name", problems)
    if not isinstance(raw["description"], str) or not raw["description"].strip():
        problems.append(f"{where}.description: must be a line of text")
    if raw["severity"] not in SEVERITIES:
        problems.append(f"{where}.severity: must be one of {', '.join(SEVERITIES)}")
    roles = names(raw["roles"], ROLE_PATTERN, f"{where}.roles", "role names", problems)
    versions = names(
        raw["applies_to"], VERSION_PATTERN, f"{where}.applies_to", "versions", problems
    )
    for key in ("artifact", *sorted(OPTIONAL & set(raw))):
        relative(raw[key], f"{where}.{key}", problems)
    check(raw["sha256"], SHA256_PATTERN, f"{where}.sha256", "64 lower-case hex digits", problems)
    size = raw["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        problems.append(f"{where}.size: must be a whole number of bytes, not {size!r}")
    if len(problems) > before:
        return None
    return Patch(
        raw["name"],
        raw["description"].strip(),
        raw["severity"],
        roles,
        versions,
        raw["artifact"],
        raw["sha256"],
        size,
        raw.get("apply"),
        raw.get("revert"),
    )


def check(
    value: object, pattern: re.Pattern[str], where: str, what: str, problems: list[str]
) -> None:
    if not isinstance(value, str) or not pattern.match(value):
        problems.append(f"{where}: must be {what}, not {value!r}")


def names(
    value: object, pattern: re.Pattern[str], where: str, what: str, problems: list[str]
) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        problems.append(f"{where}: must be a non-empty list of {what}")
        return ()
    for item in value:
        check(item, pattern, where, f"a list of {what}", problems)
    return tuple(str(v) for v in value)


def relative(value: object, where: str, problems: list[str]) -> None:
    pure = PurePosixPath(value) if isinstance(value, str) and value else None
    if pure is None or pure.is_absolute() or ".." in pure.parts or str(pure) != value:
        problems.append(f"{where}: must be a relative path inside the repository, not {value!r}")


def fetch(repo: str | Path, patch: Patch, dest_dir: Path) -> Fetched:
    """Download the artifact into dest_dir, verify size and sha256, then check what it holds."""

    def mismatch(what: str, expected: str, actual: str) -> KatoError:
        return PatchChecksumMismatch(patch.name, expected, actual, what)

    final = dest_dir / f"{patch.name}.tar.gz"
    path = repos.fetch_verified(repo, patch.artifact, final, (patch.size, patch.sha256), mismatch)
    return Fetched(patch, path, artifact_files(patch, path))


def artifact_files(patch: Patch, path: Path) -> dict[str, tuple[str, ...]]:
    """role -> files laid over it; a member outside files/ROLE/ of the patch's roles is refused."""
    files: dict[str, list[str]] = {role: [] for role in patch.roles}
    problems = []
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, OSError) as exc:
        raise PatchIndexInvalid(
            str(path), [f"{patch.name}: the artifact is not a tar.gz: {exc}"]
        ) from None
    scripts = {s for s in (patch.apply, patch.revert) if s}
    for member in members:
        parts = PurePosixPath(member.name).parts
        if member.isdir():
            continue
        if not member.isfile() or ".." in parts or member.name.startswith("/"):
            problems.append(f"{patch.name}: {member.name}: not a plain relative file")
        elif len(parts) >= 3 and parts[0] == "files" and parts[1] in files:
            files[parts[1]].append("/".join(parts[2:]))
        elif member.name not in scripts:
            problems.append(f"{patch.name}: {member.name}: not under files/ROLE/ of its roles")
    names_in = {m.name for m in members}
    problems += [f"{patch.name}: its {s} script is not in the artifact" for s in scripts - names_in]
    if problems:
        raise PatchIndexInvalid(str(path), problems)
    return {role: tuple(sorted(found)) for role, found in files.items()}
