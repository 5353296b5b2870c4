"""Build the reference platform's release repository from roles/ (run by scripts/build-release).

The versions, their overlays, migrations, supported kato versions and notes come from
roles/releases.yaml. For each version: one artifact per role, made of roles/<role>/component/
plus the files of each of the version's roles/<role>/overlays/<overlay>/ in turn (added, or
replacing earlier ones), where every `NAME.in` becomes NAME with @VERSION@ replaced, plus the
role's role.yaml (an overlay's replaces it) and a VERSION file; release.yaml carries each role's
definition. Artifacts are reproducible: sorted names, fixed mtime, owner 0:0, modes 0755/0644,
gzip without a name or time, so the same inputs give the same sha256. The format is in
docs/release-repository.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from kato.errors import KatoError
from kato.migrations import parse_migrations
from kato.release import FORMAT, INDEX_FILE, VERSION_PATTERN
from kato.roles import ROLE_FILE, Role, load_roles, parse_definition
from kato.versions import parse_range

RELEASES_FILE = "releases.yaml"

REPO_ROOT = Path(__file__).resolve().parent.parent
PLATFORM = "kato-reference"
VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "1.2.1-broken", "2.0.0")
TEMPLATE_SUFFIX = ".in"
PLACEHOLDER = "@VERSION@"
# 2000-01-01T00:00:00Z unless SOURCE_DATE_EPOCH says otherwise (reproducible-builds.org).
DEFAULT_EPOCH = 946684800
SKIPPED = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


class BuildError(Exception):
    """The roles cannot be built into a release: the message says why."""


@dataclass(frozen=True)
class Member:
    """One file of an artifact: its path inside the role's release dir, bytes and mode."""

    name: str
    data: bytes
    executable: bool


@dataclass(frozen=True)
class Built:
    role: str
    artifact: str
    sha256: str
    size: int
    definition: dict[str, object]


@dataclass(frozen=True)
class VersionSpec:
    """One version of roles/releases.yaml: what goes into its release.yaml besides artifacts."""

    version: str
    overlays: tuple[str, ...]
    extra: dict[str, object]  # kato, migrations, notes: copied into release.yaml


def load_specs(roles_dir: Path) -> dict[str, VersionSpec]:
    """roles/releases.yaml by version (without one, each version is its own single overlay)."""
    path = roles_dir / RELEASES_FILE
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BuildError(f"{path}: not valid YAML: {exc}") from None
    specs = {}
    for item in raw.get("versions", []):
        version = str(item["version"])
        extra = {k: item[k] for k in ("kato", "migrations", "notes") if item.get(k) is not None}
        specs[version] = VersionSpec(version, tuple(item.get("overlays", [])), extra)
    return specs


def role_files(
    role_dir: Path, version: str, overlays: tuple[str, ...] | None = None
) -> list[Member]:
    """The files of one role's artifact for `version`, sorted by name."""
    sources = {ROLE_FILE: role_dir / ROLE_FILE, **_tree(role_dir / "component")}
    for overlay in (version,) if overlays is None else overlays:
        sources.update(_tree(role_dir / "overlays" / overlay))
    members: dict[str, Member] = {}
    for name, path in sources.items():
        data = path.read_bytes()
        if name.endswith(TEMPLATE_SUFFIX):
            name = name.removesuffix(TEMPLATE_SUFFIX)
            data = data.replace(PLACEHOLDER.encode(), version.encode())
        if name in members or name == "VERSION":
            raise BuildError(f"{path}: makes {name}, which another file of the role makes too")
        members[name] = Member(name, data, os.access(path, os.X_OK))
    members["VERSION"] = Member("VERSION", f"{version}\n".encode(), False)
    return [members[name] for name in sorted(members)]


def _tree(top: Path) -> dict[str, Path]:
    """Relative POSIX name -> path of every regular file under top (none if top is missing)."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED)
        for filename in filenames:
            path = Path(dirpath) / filename
            if filename.endswith(".pyc"):
                continue
            if path.is_symlink() or not path.is_file():
                raise BuildError(f"{path}: only regular files can go into an artifact")
            found[path.relative_to(top).as_posix()] = path
    return found


def definition(members: list[Member], role_dir: Path) -> tuple[dict[str, object], Role]:
    """The role.yaml the artifact ships (the role's, or an overlay's), raw and validated."""
    data = next(m.data for m in members if m.name == ROLE_FILE)
    raw = yaml.safe_load(data)
    problems: list[str] = []
    role = parse_definition(raw, role_dir.name, f"{role_dir}: {ROLE_FILE}", problems)
    if role is None or problems:
        raise BuildError("; ".join(problems))
    return raw, role


def check_role(role: Role, members: list[Member], role_dir: Path) -> None:
    """The artifact must ship exactly the units role.yaml names, and an executable hook."""
    units = {m.name.removeprefix("units/") for m in members if m.name.startswith("units/")}
    if units != set(role.units):
        raise BuildError(
            f"{role_dir}/component/units/ holds {sorted(units)}, "
            f"but role.yaml's units are {sorted(role.units)}"
        )
    hooks = [m for m in members if m.name == "hooks/install"]
    if hooks and not hooks[0].executable:
        raise BuildError(f"{role_dir}/component/hooks/install must be executable")


def tar_gz(members: list[Member], mtime: int) -> bytes:
    """A reproducible .tar.gz of the members, with an entry for each directory."""
    directories = sorted({str(p) for m in members for p in PurePosixPath(m.name).parents} - {"."})
    entries = sorted([(d, None) for d in directories] + [(m.name, m) for m in members])
    raw = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as packed,
        tarfile.open(fileobj=packed, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for name, member in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "root", "root"
            if member is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(member.data), 0o755 if member.executable else 0o644
                tar.addfile(info, io.BytesIO(member.data))
    return raw.getvalue()


def write_file(path: Path, data: bytes) -> None:
    """Write through a temporary name, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def build_version(
    roles: dict[str, Role], roles_dir: Path, dest: Path, spec: VersionSpec, mtime: int
) -> list[Built]:
    built = []
    version = spec.version
    for name in sorted(roles):
        members = role_files(roles_dir / name, version, spec.overlays)
        raw, role = definition(members, roles_dir / name)
        check_role(role, members, roles_dir / name)
        data = tar_gz(members, mtime)
        artifact = f"{name}-{version}.tar.gz"
        write_file(dest / version / artifact, data)
        built.append(Built(name, artifact, hashlib.sha256(data).hexdigest(), len(data), raw))
    check_extra(spec, built)
    keep = {b.artifact for b in built} | {"release.yaml"}
    for stale in (dest / version).iterdir():
        if stale.is_file() and stale.name not in keep:
            stale.unlink()  # an artifact of a role that is gone
    write_file(dest / version / "release.yaml", release_yaml(spec, built))
    return built


def check_extra(spec: VersionSpec, built: list[Built]) -> None:
    """The version's migrations and kato range, checked as kato will read them."""
    problems: list[str] = []
    dirs = {b.role: tuple(dict(b.definition["data_dirs"])) for b in built}  # type: ignore[call-overload]
    where = f"{RELEASES_FILE}: {spec.version}"
    parse_migrations(spec.extra.get("migrations"), f"{where}: migrations", dirs, problems)
    parse_range(spec.extra.get("kato"), f"{where}: kato", problems)
    if problems:
        raise BuildError("; ".join(problems))


def release_yaml(spec: VersionSpec, built: list[Built]) -> bytes:
    roles = {
        b.role: {
            "artifact": b.artifact,
            "sha256": b.sha256,
            "size": b.size,
            "definition": b.definition,
        }
        for b in built
    }
    document = {"format": FORMAT, "platform": PLATFORM, "version": spec.version}
    document.update(spec.extra)
    document["roles"] = roles
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=200)
    return text.encode()


class IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key, as docs/release-repository.md shows them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def index_yaml(versions: list[str]) -> bytes:
    entries = [{"version": v, "manifest": f"{v}/release.yaml"} for v in versions]
    document = {"format": FORMAT, "platform": PLATFORM, "versions": entries}
    text = yaml.dump(document, Dumper=IndentedDumper, sort_keys=False, default_flow_style=False)
    return text.encode()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/build-release", description=__doc__.splitlines()[0]
    )
    parser.add_argument("dest", nargs="?", type=Path, default=Path("build/releases"))
    parser.add_argument("--roles", type=Path, default=REPO_ROOT / "roles", help="roles dir")
    parser.add_argument(
        "--version",
        dest="versions",
        action="append",
        help=f"a version to build, oldest first; repeat for more (default: {RELEASES_FILE})",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    try:
        specs = load_specs(args.roles)
        versions = args.versions or list(specs) or list(VERSIONS)
        bad = [v for v in versions if not VERSION_PATTERN.match(v)]
        if bad or len(set(versions)) != len(versions):
            raise BuildError(f"versions must be distinct version strings: {versions}")
        roles = load_roles(args.roles)
        for version in versions:
            spec = specs.get(version, VersionSpec(version, (version,), {}))
            built = build_version(roles, args.roles, args.dest, spec, mtime)
            print(f"{args.dest / version}: {len(built)} artifacts", file=sys.stderr)
        write_file(args.dest / INDEX_FILE, index_yaml(versions))
    except (KatoError, BuildError) as exc:
        print(f"build-release: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    print(args.dest / INDEX_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
