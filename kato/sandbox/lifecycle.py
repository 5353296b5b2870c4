"""`kato sandbox up`, `down` and `status`: make, remove and look at a whole sandbox."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kato.errors import KatoError, UsageError
from kato.progress import Progress
from kato.sandbox import access, clusterfile, disk, host, image, model, network, provision
from kato.sandbox import node as nodes
from kato.sandbox import rehearsal as rehearsals
from kato.sandbox.model import Node, Sandbox
from kato.transport import local, probe

BOOT_TIMEOUT = 120.0


@dataclass(frozen=True)
class NodeStatus:
    name: str
    address: str
    roles: tuple[str, ...]
    state: str


@dataclass(frozen=True)
class SandboxStatus:
    name: str
    subnet: str
    cluster_file: str
    ssh_config: str
    nodes: tuple[NodeStatus, ...]

    @property
    def is_up(self) -> bool:
        return all(n.state == "running" for n in self.nodes)


@dataclass(frozen=True)
class UpResult:
    status: SandboxStatus
    created: bool
    note: str | None = None


@dataclass(frozen=True)
class DownResult:
    name: str
    existed: bool
    removed: tuple[str, ...]


def status(name: str) -> SandboxStatus:
    return describe(model.require(name))


def describe(sandbox: Sandbox) -> SandboxStatus:
    return SandboxStatus(
        name=sandbox.name,
        subnet=sandbox.subnet,
        cluster_file=str(clusterfile.cluster_path(sandbox)),
        ssh_config=str(clusterfile.ssh_config_path(sandbox)),
        nodes=tuple(
            NodeStatus(n.name, n.address, n.roles, nodes.state(sandbox, n)) for n in sandbox.nodes
        ),
    )


def up(
    name: str,
    count: int,
    subnet: str | None,
    mirror: str | None,
    progress: Progress,
    platform: bool = True,
    bastion: bool = False,
    user: str | None = None,
    from_archive: str | None = None,
) -> UpResult:
    model.validate_name(name)
    host.require_root("kato sandbox up")
    host.require_tools()
    existing = model.load(name)
    if existing is not None and from_archive:
        raise UsageError(
            f"sandbox {name!r} exists: a rehearsal imports into a new sandbox only",
            hint=f"`kato sandbox down --name {name}` first, or choose another --name",
        )
    if existing is not None:
        return _already_there(existing, count)
    if subnet is None:
        subnet = host.pick_free_subnet(host.taken_ranges())
    else:
        host.check_subnet_free(subnet)
    model.plan_sandbox(name, count, subnet, "", bastion, user)  # validates them all first
    rehearsal = rehearsals.read(from_archive, count, progress) if from_archive else None
    root = image.ensure_image(progress, mirror)
    sandbox = model.plan_sandbox(name, count, subnet, str(root), bastion, user)
    for change in host.raise_inotify_limits(count):
        progress.warn(f"raised {change} so that {count} nodes can boot")
    model.save(sandbox)  # recorded before anything is made, so `down` can always undo it
    try:
        _create(sandbox, progress)
        if platform:
            version = rehearsal.version if rehearsal else provision.PLATFORM_VERSION
            provision.provision(sandbox, progress, version)
        if rehearsal is not None:
            rehearsals.restore(sandbox, rehearsal, progress)
    except BaseException:
        progress.warn(f"`kato sandbox up` failed: removing the half-made sandbox {name!r}")
        down(name, progress)
        raise
    return UpResult(describe(sandbox), created=True)


def _already_there(sandbox: Sandbox, count: int) -> UpResult:
    now = describe(sandbox)
    if not now.is_up:
        broken = ", ".join(f"{n.name} {n.state}" for n in now.nodes if n.state != "running")
        raise KatoError(
            f"sandbox {sandbox.name!r} exists but is not fully up ({broken})",
            hint=f"start a node with `kato sandbox start NODE --name {sandbox.name}`, "
            f"or remove it with `kato sandbox down --name {sandbox.name}`",
        )
    note = None
    if count != len(sandbox.nodes):
        note = (
            f"it has {len(sandbox.nodes)} nodes, not {count}: run "
            f"`kato sandbox down --name {sandbox.name}` first to change that"
        )
    return UpResult(now, created=False, note=note)


def _create(sandbox: Sandbox, progress: Progress) -> None:
    home = sandbox.home
    home.mkdir(mode=0o700, exist_ok=True)
    key = clusterfile.identity_path(sandbox)
    progress.step("making the admin key and the network")
    local.run(
        (
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"kato-sandbox-{sandbox.name}",
            "-f",
            str(key),
        )
    )
    network.create_bridge(sandbox)
    admin_key = clusterfile.admin_public_key(sandbox)
    access.make_sudo_password(sandbox)
    for n in sandbox.nodes:
        progress.step(f"preparing {n.name} ({n.address})")
        network.create_node_network(sandbox, n)
        nodes.prepare_root(sandbox, n, Path(sandbox.image), admin_key)
        access.prepare(sandbox, n, nodes.root_dir(sandbox, n), admin_key)
    clusterfile.write(sandbox, {n.name: nodes.host_public_key(sandbox, n) for n in sandbox.nodes})
    progress.step(f"booting {len(sandbox.nodes)} nodes")
    for n in sandbox.nodes:
        nodes.start(sandbox, n)
    if sandbox.bastion_node is not None:  # the others are reached through it
        wait_ready(sandbox, sandbox.bastion_node)
    with ThreadPoolExecutor(max_workers=min(32, len(sandbox.nodes))) as pool:
        list(pool.map(lambda n: wait_ready(sandbox, n), sandbox.cluster_nodes))


def wait_ready(sandbox: Sandbox, node: Node, timeout: float = BOOT_TIMEOUT) -> None:
    """Wait for the node's SSH banner, then prove the admin key logs in and the host key is
    the one in known_hosts (OpenSSH with StrictHostKeyChecking=yes)."""
    probe.wait_for_ssh(node.name, node.address, timeout=timeout)
    local.run(
        (
            "ssh",
            "-F",
            str(clusterfile.ssh_config_path(sandbox)),
            "-o",
            "BatchMode=yes",
            node.name,
            "true",
        ),
        timeout=30,
    )


def down(name: str, progress: Progress) -> DownResult:
    model.validate_name(name)
    host.require_root("kato sandbox down")
    sandbox = model.load(name)
    if sandbox is None:
        return DownResult(name, existed=False, removed=())
    removed: list[str] = []
    progress.step(f"stopping {len(sandbox.nodes)} nodes")
    with ThreadPoolExecutor(max_workers=min(32, len(sandbox.nodes))) as pool:
        list(pool.map(lambda n: nodes.stop(sandbox, n), sandbox.nodes))
    removed += [f"node {n.name}" for n in sandbox.nodes]
    progress.step("removing disks, mounts and network")
    for d in sandbox.disks:
        disk.detach_files(sandbox, d)
        removed.append(f"disk {d.node}:{d.at}")
    for n in sandbox.nodes:
        host.unmount_all(sandbox.node_dir(n))
        network.remove_node_network(sandbox, n)
    network.remove_bridge(sandbox)
    removed.append(f"bridge {sandbox.bridge}")
    for device in host.loop_devices_for(sandbox.home):
        local.run(("losetup", "-d", device), check=False)
    host.remove_tree(sandbox.home)
    removed.append(f"state {sandbox.home}")
    return DownResult(name, existed=True, removed=tuple(removed))
