"""Release repositories: read index.yaml and <version>/release.yaml, fetch verified artifacts.

A repository is a directory, a file:// URL or an https:// URL (read by kato/repos.py). Its
format is documented in docs/release-repository.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from kato import repos
from kato.errors import KatoError, UsageError
from kato.migrations import Migration, parse_migrations
from kato.repos import RepositoryUnreachable as RepositoryUnreachable  # callers name it here
from kato.roles import Role, parse_definition
from kato.versions import Range, parse_range

FORMAT = 1
INDEX_FILE = "index.yaml"
VERSION_PATTERN = re.compile(r"\A[0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}\Z")
PLATFORM_PATTERN = re.compile(r"\A[a-z][a-z0-9-]{0,63}\Z")
ROLE_PATTERN = re.compile(r"\A[a-z][a-z0-9-]{0,39}\Z")
SHA256_PATTERN = re.compile(r"\A[0-9a-f]{64}\Z")
RELEASE_KEYS = ("format", "platform", "version", "roles")
OPTIONAL_KEYS = ("kato", "migrations", "notes")


class ManifestInvalid(UsageError):
    """index.yaml or a release.yaml is wrong: every problem, each with the path of its field."""

    def __init__(self, repo: str, problems: Iterable[str]) -> None:
        self.repo = repo
        self.problems = tuple(problems)
        listing = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(
            f"the release repository {repo} is not valid:\n{listing}",
            hint="docs/release-repository.md describes its format; "
            "scripts/build-release writes a valid one",
        )


class ChecksumMismatch(KatoError):
    """A fetched artifact is not what its release.yaml says: nothing was kept."""

    def __init__(self, role: str, expected: str, actual: str, what: str = "sha256") -> None:
        super().__init__(
            f"the {role} artifact has {what} {actual}, its release.yaml says {expected}",
            hint="the download was damaged, or the repository changed after its release.yaml "
            "was written; nothing was kept, fetch again or rebuild the repository",
        )
        self.role = role
        self.expected = expected
        self.actual = actual
        self.what = what


@dataclass(frozen=True)
class IndexEntry:
    version: str
    manifest: str


@dataclass(frozen=True)
class ReleaseIndex:
    """index.yaml: the platform and its versions, oldest first as published."""

    platform: str
    versions: tuple[IndexEntry, ...]

    @property
    def version_names(self) -> tuple[str, ...]:
        return tuple(entry.version for entry in self.versions)

    def entry(self, version: str) -> IndexEntry:
        for entry in self.versions:
            if entry.version == version:
                return entry
        raise UsageError(
            f"the release repository of {self.platform} has no version {version!r}",
            hint=f"available versions: {', '.join(self.version_names) or 'none'}",
        )


@dataclass(frozen=True)
class Artifact:
    """One role's artifact: its path relative to the repository root, sha256 and size."""

    role: str
    path: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class Release:
    """<version>/release.yaml: one artifact per role of that platform version, the roles'
    definitions, the migrations it declares, the kato versions it supports and its notes.
    `digest` is the sha256 of the release.yaml's bytes: it names the release exactly."""

    platform: str
    version: str
    roles: Mapping[str, Artifact]
    digest: str = ""
    definitions: Mapping[str, Role] = field(default_factory=dict)
    migrations: tuple[Migration, ...] = ()
    kato: Range = field(default_factory=Range)
    notes: str = ""

    def artifact(self, role: str) -> Artifact:
        if role not in self.roles:
            raise UsageError(
                f"release {self.version} of {self.platform} has no role {role!r}",
                hint=f"its roles: {', '.join(sorted(self.roles))}",
            )
        return self.roles[role]


def load_index(repo: str | Path) -> ReleaseIndex:
    """The repository's index.yaml, validated."""
    raw = _read_yaml(repo, INDEX_FILE)
    problems: list[str] = []
    index = _parse_index(raw, INDEX_FILE, problems)
    if index is None or problems:
        raise ManifestInvalid(str(repo), problems)
    return index


def load_release(repo: str | Path, version: str) -> Release:
    """The release.yaml of `version` (a UsageError naming the available ones if unknown)."""
    index = load_index(repo)
    entry = index.entry(version)
    data = repos.read_bytes(repo, entry.manifest, ManifestInvalid)
    raw = repos.parse_yaml(data, str(repo), entry.manifest, ManifestInvalid)
    problems: list[str] = []
    release = _parse_release(raw, entry, index.platform, problems)
    if release is None or problems:
        raise ManifestInvalid(str(repo), problems)
    return replace(release, digest=hashlib.sha256(data).hexdigest())


def fetch_artifact(repo: str | Path, release: Release, role: str, dest_dir: Path) -> Path:
    """Stream the role's artifact into dest_dir and verify its size and sha256.

    The file appears under its final name only once verified; on any failure nothing is left.
    """
    artifact = release.artifact(role)

    def mismatch(what: str, expected: str, actual: str) -> KatoError:
        return ChecksumMismatch(role, expected, actual, what)

    return repos.fetch_verified(
        repo,
        artifact.path,
        Path(dest_dir) / artifact.filename,
        (artifact.size, artifact.sha256),
        mismatch,
    )


def _read_yaml(repo: str | Path, relative: str) -> object:
    return repos.read_yaml(repo, relative, ManifestInvalid)


def _parse_index(raw: object, path: str, problems: list[str]) -> ReleaseIndex | None:
    fields = _mapping(raw, path, ("format", "platform", "versions"), problems)
    if fields is None:
        return None
    platform = _platform(fields, path, problems)
    versions = fields.get("versions")
    if not isinstance(versions, list):
        problems.append(f"{path}: versions: must be a list of {{version, manifest}}")
        return None
    entries: list[IndexEntry] = []
    for number, item in enumerate(versions):
        entry = _parse_entry(item, f"{path}: versions[{number}]", problems)
        if entry is not None and entry.version in (e.version for e in entries):
            problems.append(f"{path}: versions[{number}].version: {entry.version} is listed twice")
        elif entry is not None:
            entries.append(entry)
    if platform is None or problems:
        return None
    return ReleaseIndex(platform, tuple(entries))


def _parse_entry(raw: object, where: str, problems: list[str]) -> IndexEntry | None:
    if not isinstance(raw, dict) or set(raw) != {"version", "manifest"}:
        problems.append(f"{where}: must be a mapping of exactly version and manifest")
        return None
    version = _version(raw["version"], f"{where}.version", problems)
    manifest = _relative_path(raw["manifest"], f"{where}.manifest", problems)
    if version is None or manifest is None:
        return None
    return IndexEntry(version, manifest)


def _parse_release(
    raw: object, entry: IndexEntry, platform: str, problems: list[str]
) -> Release | None:
    path = entry.manifest
    fields = _mapping(raw, path, RELEASE_KEYS, problems, OPTIONAL_KEYS)
    if fields is None:
        return None
    if _platform(fields, path, problems) not in (None, platform):
        problems.append(f"{path}: platform: must be {platform} as in {INDEX_FILE}")
    version = _version(fields.get("version"), f"{path}: version", problems)
    if version is not None and version != entry.version:
        problems.append(f"{path}: version: {version}, but {INDEX_FILE} lists it as {entry.version}")
    roles = fields.get("roles")
    if not isinstance(roles, dict) or not roles:
        problems.append(f"{path}: roles: must be a non-empty mapping of role to artifact")
        return None
    base = PurePosixPath(path).parent
    artifacts = {}
    for role, item in roles.items():
        artifact = _parse_artifact(role, item, base, f"{path}: roles.{role}", problems)
        if artifact is not None:
            artifacts[artifact.role] = artifact
    definitions = {}
    for role, item in roles.items():
        if isinstance(item, dict) and "definition" in item:
            where = f"{path}: roles.{role}.definition"
            definition = parse_definition(item["definition"], str(role), where, problems)
            if definition is not None:
                definitions[definition.name] = definition
    dirs = {name: tuple(d.data_dirs) for name, d in definitions.items()}
    migrations = parse_migrations(fields.get("migrations"), f"{path}: migrations", dirs, problems)
    kato = parse_range(fields.get("kato"), f"{path}: kato", problems)
    notes = fields.get("notes") or ""
    if not isinstance(notes, str):
        problems.append(f"{path}: notes: must be text")
    if problems:
        return None
    return Release(
        platform, entry.version, artifacts, "", definitions, migrations, kato, str(notes)
    )


def _parse_artifact(
    role: object, raw: object, base: PurePosixPath, where: str, problems: list[str]
) -> Artifact | None:
    if not isinstance(role, str) or not ROLE_PATTERN.match(role):
        problems.append(f"{where}: not a role name")
        return None
    if not isinstance(raw, dict) or not {"artifact", "sha256", "size"} <= set(raw) <= {
        "artifact",
        "sha256",
        "size",
        "definition",
    }:
        problems.append(
            f"{where}: must be a mapping of artifact, sha256, size and (optional) definition"
        )
        return None
    name = _relative_path(raw["artifact"], f"{where}.artifact", problems)
    digest, size = raw["sha256"], raw["size"]
    if not isinstance(digest, str) or not SHA256_PATTERN.match(digest):
        problems.append(f"{where}.sha256: must be 64 lower-case hex digits")
        digest = None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        problems.append(f"{where}.size: must be a whole number of bytes, not {size!r}")
        size = None
    if name is None or digest is None or size is None:
        return None
    return Artifact(role, str(base / name), digest, size)


def _mapping(
    raw: object,
    path: str,
    keys: tuple[str, ...],
    problems: list[str],
    optional: tuple[str, ...] = (),
) -> dict[str, object] | None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a mapping of {', '.join(keys)}")
        return None
    for key in sorted(set(raw) - set(keys) - set(optional), key=str):
        problems.append(f"{path}: {key}: unknown key (known: {', '.join(keys + optional)})")
    for key in keys:
        if key not in raw:
            problems.append(f"{path}: {key}: required")
    if "format" in raw and (raw["format"] != FORMAT or isinstance(raw["format"], bool)):
        problems.append(f"{path}: format: must be {FORMAT}, not {raw['format']!r}")
    return {str(key): value for key, value in raw.items()}


def _platform(fields: Mapping[str, object], path: str, problems: list[str]) -> str | None:
    value = fields.get("platform")
    if value is None:
        return None
    if not isinstance(value, str) or not PLATFORM_PATTERN.match(value):
        problems.append(f"{path}: platform: must be a lower-case name, not {value!r}")
        return None
    return value


def _version(value: object, where: str, problems: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not VERSION_PATTERN.match(value):
        problems.append(f"{where}: must be a version string such as '1.0.0', not {value!r}")
        return None
    return value


def _relative_path(value: object, where: str, problems: list[str]) -> str | None:
    pure = PurePosixPath(value) if isinstance(value, str) and value else None
    if pure is None or pure.is_absolute() or ".." in pure.parts or str(pure) != value:
        problems.append(f"{where}: must be a relative path inside the repository, not {value!r}")
        return None
    return value
