"""One sandbox node: its overlay root, identity, and the supervised systemd-nspawn that runs it."""

from __future__ import annotations

import signal
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from kato.sandbox import cgroups, host, network
from kato.sandbox.model import Node, Sandbox
from kato.transport import local

REBOOT_STATUS = 133  # systemd-nspawn's exit status when the node asked for a reboot
HOST_KEY = "etc/ssh/ssh_host_ed25519_key"


def root_dir(sandbox: Sandbox, node: Node) -> Path:
    return sandbox.node_dir(node) / "root"


def machine_id(sandbox: Sandbox, node: Node) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"kato-sandbox:{sandbox.name}:{node.name}").hex


def nspawn_argv(sandbox: Sandbox, node: Node) -> tuple[str, ...]:
    binds = tuple(f"--bind={sandbox.disk_mount(d)}:{d.at}" for d in sandbox.disks_of(node))
    return (
        "systemd-nspawn",
        f"--directory={root_dir(sandbox, node)}",
        f"--machine={node.machine(sandbox.name)}",
        f"--hostname={node.name}",
        f"--uuid={machine_id(sandbox, node)}",
        "--register=no",
        "--keep-unit",
        f"--network-namespace-path=/run/netns/{sandbox.netns(node)}",
        "--console=read-only",
        *binds,
        "--boot",
    )


def supervisor_argv(sandbox: Sandbox, node: Node) -> tuple[str, ...]:
    return (sys.executable, "-m", "kato.sandbox.supervisor", sandbox.name, node.name)


def prepare_root(sandbox: Sandbox, node: Node, image: Path, admin_key: str) -> None:
    """Mount the node's overlay over the image and give it its own identity and host key."""
    base = sandbox.node_dir(node)
    for part in ("upper", "work", "root"):
        (base / part).mkdir(parents=True, exist_ok=True, mode=0o755)
    root = root_dir(sandbox, node)
    if not host.mounts_under(root):
        local.run(
            (
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={image},upperdir={base / 'upper'},workdir={base / 'work'}",
                str(root),
            )
        )
    (root / "etc/hostname").write_text(node.name + "\n")
    (root / "etc/hosts").write_text(_hosts(sandbox, node))
    (root / "etc/machine-id").write_text(machine_id(sandbox, node) + "\n")
    if not (root / HOST_KEY).exists():
        local.run(
            (
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"root@{node.name}",
                "-f",
                str(root / HOST_KEY),
            )
        )
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(admin_key.strip() + "\n")
    keys.chmod(0o600)


def _hosts(sandbox: Sandbox, node: Node) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        f"127.0.1.1\t{node.name}",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    lines += [f"{other.address}\t{other.name}" for other in sandbox.nodes if other != node]
    return "\n".join(lines) + "\n"


def host_public_key(sandbox: Sandbox, node: Node) -> str:
    """The node's host key, read off its own filesystem (trusted by construction)."""
    return (sandbox.node_dir(node) / "upper" / (HOST_KEY + ".pub")).read_text().strip()


@dataclass(frozen=True)
class Runtime:
    supervisor: int | None
    nspawn: int | None
    init: int | None


def runtime(sandbox: Sandbox, node: Node) -> Runtime:
    supervisors = host.pids_with_args("kato.sandbox.supervisor", sandbox.name, node.name)
    nspawns = host.pids_with_args(f"--machine={node.machine(sandbox.name)}", "--boot")
    nspawn = nspawns[0] if nspawns else None
    inits = host.children(nspawn) if nspawn else []
    return Runtime(supervisors[0] if supervisors else None, nspawn, inits[0] if inits else None)


def wanted_file(sandbox: Sandbox, node: Node) -> Path:
    return sandbox.node_dir(node) / "wanted"


def state(sandbox: Sandbox, node: Node) -> str:
    now = runtime(sandbox, node)
    if now.init is None:
        if now.supervisor is not None:
            return "booting"
        wanted = wanted_file(sandbox, node)
        if wanted.exists() and wanted.read_text().strip() == "running":
            return "crashed"
        return "stopped"
    if host.process_state(now.init) == "T":
        return "frozen"
    if not network.is_link_up(sandbox.veth(node)):
        return "partitioned"
    return "running"


def start(sandbox: Sandbox, node: Node) -> None:
    """Boot the node under its supervisor (which restarts it when it reboots itself)."""
    wanted_file(sandbox, node).write_text("running\n")
    if runtime(sandbox, node).supervisor is not None:
        return
    local.spawn_detached(
        supervisor_argv(sandbox, node), log=sandbox.node_dir(node) / "supervisor.log"
    )


def stop(sandbox: Sandbox, node: Node, timeout: float = 30.0) -> None:
    """Power the node off cleanly; kill it if it does not go in time. Safe when not running."""
    if sandbox.node_dir(node).exists():
        wanted_file(sandbox, node).write_text("stopped\n")
    now = runtime(sandbox, node)
    if now.init is not None:
        for pid in host.pid_namespace_members(now.init):
            host.signal_pid(pid, signal.SIGCONT)  # a frozen node cannot power off
    if now.supervisor is not None:
        host.signal_pid(now.supervisor, signal.SIGTERM)
    elif now.nspawn is not None:
        host.signal_pid(now.nspawn, signal.SIGTERM)
    alive = [p for p in (now.supervisor, now.nspawn) if p is not None]
    if not host.wait_gone(alive, timeout):
        kill(sandbox, node)
        host.wait_gone(alive, 10.0)
    # e.g. after systemd-nspawn itself was SIGKILLed: its node's processes live on, orphaned
    orphans = sorted(
        set(host.pids_with_root(root_dir(sandbox, node)))
        | set(cgroups.members(node.machine(sandbox.name)))
    )
    for pid in orphans:
        host.signal_pid(pid, signal.SIGKILL)
    host.wait_gone(orphans, 10.0)
    cgroups.remove(node.machine(sandbox.name))


def kill(sandbox: Sandbox, node: Node) -> bool:
    """Hard-stop the node: SIGKILL its init, which takes every process of the node with it
    (killing systemd-nspawn instead would orphan them)."""
    init = runtime(sandbox, node).init
    return init is not None and host.signal_pid(init, signal.SIGKILL)
