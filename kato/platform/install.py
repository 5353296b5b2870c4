"""`kato install` and `kato uninstall`: a release's components on the nodes that carry each role.

Facts first (what each node has), then a plan of only what is missing, so re-running a
finished install changes nothing. Checksums are verified here before any node is touched,
and again on each node after the upload.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kato import datadirs, role_definitions
from kato import release as releases
from kato.config import Cluster, NodeConfig
from kato.connect import select_nodes
from kato.engine.session import session
from kato.engine.steps import apply_plan
from kato.errors import UsageError
from kato.facts import NODE_FILE, RELEASES, Fact
from kato.plan import Plan, PlanOutcome, Step
from kato.platform.readable import itemized
from kato.remote import layout, safe_write
from kato.role_definitions import Definitions, role_of
from kato.roles import Role, in_start_order
from kato.transport.base import CommandResult
from kato.transport.fanout import FanOut, fan_out

STAGING = layout.STAGING
UNIT_DIR = layout.UNIT_DIR
UPSTREAMS = layout.UPSTREAMS
MARKER = ".kato-artifact-sha256"
STAGED = ("make the private staging dir", "upload the ", "verify the ")  # touch nothing live
INSTALLED = """
import json, os, sys
version, pairs = sys.argv[1], json.loads(sys.argv[2])
base = "/var/lib/kato/releases"
def read(p):
    try:
        with open(p, "rb") as f: return f.read().decode(errors="replace")
    except OSError: return None
out = {"current": os.path.basename(os.readlink(base + "/current"))
       if os.path.islink(base + "/current") else None, "markers": {}, "units": {}, "files": {}}
for role, units in pairs.items():
    out["markers"][role] = (read(f"{base}/{version}/{role}/.kato-artifact-sha256") or "").strip()
    for u in units:
        shipped = read(f"{base}/{version}/{role}/units/{u}")
        out["units"][u] = read(f"/etc/systemd/system/{u}") == shipped
for p in ("/etc/kato/node.yaml", "/etc/kato/router-upstreams.conf", "/var/lib/kato/datadirs.yaml"):
    out["files"][p] = read(p)
print(json.dumps(out))
"""
UNPACK = (
    'set -e; rm -rf "$1.kato-tmp"; mkdir -p "$1.kato-tmp"; '
    'tar -xzf "$2" -C "$1.kato-tmp" --no-same-owner; rm -rf "$1"; mv "$1.kato-tmp" "$1"; '
    'rm -f "$2"'
)
# The marker that says "this artifact is installed" is written only once its hook succeeded,
# so a failed hook is run again by the next install.
HOOK = 'set -e; if [ -x "$1/hooks/install" ]; then "$1/hooks/install" "$2" "$1"; fi'


@dataclass(frozen=True)
class Installed:
    current: str | None
    markers: dict[str, str]
    units: dict[str, bool]
    files: dict[str, str | None]


def installed_fact(version: str, roles: list[Role]) -> Fact[Installed]:
    pairs = {r.name: list(r.units) for r in roles}

    def parse(result: CommandResult) -> Installed:
        raw = json.loads(result.stdout)
        return Installed(raw["current"], raw["markers"], raw["units"], raw["files"])

    return Fact(("python3", "-c", INSTALLED, version, json.dumps(pairs)), parse)


def node_document(cluster: Cluster, node: NodeConfig) -> str:
    return yaml.safe_dump(
        {
            "format": 1,
            "cluster": cluster.name,
            "name": node.name,
            "roles": list(node.roles),
            "core": cluster.core,
        },
        sort_keys=False,
    )


def upstreams(cluster: Cluster) -> str:
    deas = cluster.with_role("dea") or (cluster.core_node,)
    servers = "".join(f"    server {n.address}:9000;\n" for n in deas)
    return f"# written by kato install\nupstream apps {{\n{servers}}}\n"


@dataclass(frozen=True)
class Artifacts:
    version: str
    local: dict[str, str]  # role -> verified local file
    sha256: dict[str, str]
    sizes: dict[str, int] = field(default_factory=dict)  # role -> bytes, for the readable plan


def hook_env(node: str, role: Role, have: Installed) -> tuple[str, ...]:
    """`env KATO_DATA_<NAME>=PATH...`: where the role's data dirs live now (kato relocate)."""
    record = have.files.get(datadirs.RECORD)
    where = datadirs.parse(node, record) if record else datadirs.Locations()
    pairs = [f"{k}={v}" for k, v in datadirs.hook_env(where, role).items()]
    return ("env", *pairs) if pairs else ()


def plan_node(
    cluster: Cluster, node: NodeConfig, roles: list[Role], artifacts: Artifacts, have: Installed
) -> list[Step]:
    """The steps that bring one node to the release; none when it is there already."""
    v, name = artifacts.version, node.name
    steps: list[Step] = []
    fresh = [r for r in roles if have.markers.get(r.name) != artifacts.sha256[r.name]]
    if fresh:
        steps.append(
            Step(name, "make the private staging dir", ("install", "-d", "-m", "0700", STAGING))
        )
    for role in fresh:
        target, staged = f"{RELEASES}/{v}/{role.name}", f"{STAGING}/{role.name}-{v}.tar.gz"
        sha = artifacts.sha256[role.name]
        steps += [
            Step(
                name,
                f"upload the {role.name} artifact",
                safe_write.argv(staged, 0o600),
                upload=artifacts.local[role.name],
                prelude=safe_write.prelude(),
            ),
            Step(
                name,
                f"verify the {role.name} artifact on the node",
                (
                    "sh",
                    "-c",
                    'printf "%s  %s\\n" "$1" "$2" | sha256sum -c --quiet -',
                    "sh",
                    sha,
                    staged,
                ),
            ),
            Step(name, f"unpack {role.name} {v}", ("sh", "-c", UNPACK, "sh", target, staged)),
            Step(
                name,
                f"run the {role.name} install hook",
                (*hook_env(name, role, have), "sh", "-c", HOOK, "sh", target, v, sha),
            ),
            Step(
                name,
                f"mark {role.name} {v} installed",
                safe_write.argv(f"{target}/{MARKER}", 0o644),
                stdin=f"{sha}\n",
                prelude=safe_write.prelude(),
            ),
        ]
    units = [(r, u) for r in roles for u in r.units if r in fresh or not have.units.get(u)]
    for role, unit in units:
        steps.append(
            Step(
                name,
                f"install unit {unit}",
                (
                    "install",
                    "-m",
                    "0644",
                    f"{RELEASES}/{v}/{role.name}/units/{unit}",
                    f"{UNIT_DIR}/{unit}",
                ),
            )
        )
    wanted_files = {NODE_FILE: node_document(cluster, node)}
    if "router" in node.roles:
        wanted_files[UPSTREAMS] = upstreams(cluster)
    for path, text in wanted_files.items():
        if have.files.get(path) != text:
            argv = safe_write.argv(path, 0o644)
            steps.append(
                Step(name, f"write {path}", argv, stdin=text, prelude=safe_write.prelude())
            )
    if have.current != v:
        steps += [
            Step(name, f"switch current to {v}", ("ln", "-sfn", v, f"{RELEASES}/current.kato-tmp")),
            Step(
                name,
                "rename it into place atomically",
                ("mv", "-T", f"{RELEASES}/current.kato-tmp", f"{RELEASES}/current"),
            ),
        ]
    if units:
        every = tuple(u for r in roles for u in r.units)
        steps += [
            Step(name, "reload systemd", ("systemctl", "daemon-reload")),
            Step(name, "enable the role units", ("systemctl", "enable", "--quiet", "--", *every)),
        ]
    return steps


@dataclass(frozen=True)
class InstallOutcome(PlanOutcome):
    version: str = ""


def node_roles(
    node: NodeConfig, roles: dict[str, Role], version: str, available: set[str]
) -> list[Role]:
    unknown = [r for r in node.roles if r not in roles or r not in available]
    if unknown:
        raise UsageError(
            f"{node.name} carries {', '.join(unknown)}, which release {version} does not provide",
            hint="fix the node's roles in the cluster file",
        )
    return list(in_start_order(roles[r] for r in node.roles))


def install(
    cluster: Cluster,
    version: str | None,
    names: list[str] | None,
    *,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    command: list[str] | None = None,
) -> InstallOutcome:
    if not cluster.releases:
        raise UsageError(
            "the cluster file names no release repository", hint="add `releases: PATH-OR-URL` to it"
        )
    index = releases.load_index(cluster.releases)
    version = version or index.versions[-1].version
    release = releases.load_release(cluster.releases, version)
    roles = role_definitions.of_release(release)
    chosen = select_nodes(cluster, names)
    per_node = {n.name: node_roles(n, roles, version, set(release.roles)) for n in chosen}
    with tempfile.TemporaryDirectory(prefix="kato-install-") as tmp:
        needed = sorted({r.name for rs in per_node.values() for r in rs})
        local = {
            r: str(releases.fetch_artifact(cluster.releases, release, r, Path(tmp))) for r in needed
        }  # every checksum verified before any node is touched
        sha256 = {r: release.artifact(r).sha256 for r in needed}
        sizes = {r: Path(local[r]).stat().st_size for r in needed}
        artifacts = Artifacts(version, local, sha256, sizes)
        with session(cluster, command or [], lock_wait=lock_wait, dry_run=dry_run) as s:
            have: FanOut[Installed] = fan_out(
                list(per_node),
                lambda n: installed_fact(version, per_node[n]).gather(s.transport(n)),
                cluster.ssh.parallel,
            )
            steps = [
                s
                for n in chosen
                if n.name in have.succeeded
                for s in itemized(
                    plan_node(cluster, n, per_node[n.name], artifacts, have.succeeded[n.name]),
                    version,
                    sizes,
                    have.succeeded[n.name].current,
                )
            ]
            plan = Plan(f"install {version}", tuple(steps))
            if dry_run or plan.is_empty:
                return InstallOutcome(plan, dry_run, failed=dict(have.failed), version=version)
            done, failed = apply_plan(s, plan, STAGED)
            failed = {**have.failed, **failed}
            s.op.settle(bool(done), bool(failed))
    return InstallOutcome(plan, False, done, failed, version=version)


def plan_uninstall(cluster: Cluster, nodes: tuple[NodeConfig, ...], roles: Definitions) -> Plan:
    """Stop and remove the platform's units and releases; data dirs are kept. Each node's
    units are those of the release it runs (`roles` per node)."""
    steps: list[Step] = []
    for node in nodes:
        own = [r for n in node.roles if (r := role_of(roles, node.name, n)) is not None]
        units = tuple(u for r in reversed(in_start_order(own)) for u in r.units)
        if units:
            steps += [
                Step(
                    node.name,
                    "stop and disable the role units",
                    ("systemctl", "disable", "--now", "--quiet", "--", *units),
                ),
                Step(
                    node.name,
                    "remove the unit files",
                    ("rm", "-f", "--", *(f"{UNIT_DIR}/{u}" for u in units)),
                ),
                Step(node.name, "reload systemd", ("systemctl", "daemon-reload")),
            ]
        steps.append(
            Step(
                node.name,
                "remove the installed releases and node identity",
                ("rm", "-rf", "--", RELEASES, NODE_FILE, UPSTREAMS, STAGING),
            )
        )
    return Plan("uninstall (data dirs are kept)", tuple(steps))


def uninstall(
    cluster: Cluster,
    names: list[str] | None,
    *,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    command: list[str] | None = None,
) -> PlanOutcome:
    chosen = select_nodes(cluster, names)
    with session(cluster, command or [], lock_wait=lock_wait) as s:
        defined = role_definitions.of_nodes(cluster, s.conns, [n.name for n in chosen])
        plan = plan_uninstall(cluster, chosen, defined)
        if dry_run:
            return PlanOutcome(plan, dry_run=True)
        done, failed = apply_plan(s, plan)
        s.op.settle(bool(done), bool(failed))
    return PlanOutcome(plan, False, done, failed)
