"""Facts about this machine the sandbox needs: root, tools, free addresses, processes, mounts."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from kato.errors import AddressRangeTaken, NotRoot, ToolMissing
from kato.transport import local

# tool -> the Debian package that provides it
REQUIRED_TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "ssh-keygen": "openssh-client",
    "losetup": "mount",
    "mkfs.btrfs": "btrfs-progs",
    "mkfs.ext4": "e2fsprogs",
}
SUBNET_POOL = ipaddress.ip_network("198.18.0.0/16")


def require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise NotRoot(action)


def require_tools(tools: dict[str, str] = REQUIRED_TOOLS) -> None:
    for tool, package in tools.items():
        if local.which(tool) is None:
            raise ToolMissing(tool, package)


@dataclass(frozen=True)
class TakenRange:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    holder: str


def taken_ranges() -> list[TakenRange]:
    """Every IPv4 network this machine has an address or a route in."""
    taken: list[TakenRange] = []
    for entry in json.loads(local.run(("ip", "-j", "-4", "addr")).stdout or "[]"):
        for info in entry.get("addr_info", []):
            net = ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
            taken.append(TakenRange(net, f"address {info['local']} on {entry['ifname']}"))
    for route in json.loads(local.run(("ip", "-j", "-4", "route")).stdout or "[]"):
        dst = route.get("dst", "default")
        if dst == "default":
            continue
        net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        taken.append(TakenRange(net, f"route {dst} via {route.get('dev', '?')}"))
    return taken


def check_subnet_free(subnet: str) -> None:
    wanted = ipaddress.ip_network(subnet)
    for taken in taken_ranges():
        if wanted.overlaps(taken.network):
            raise AddressRangeTaken(str(wanted), taken.holder)


def pick_free_subnet(taken: list[TakenRange]) -> str:
    """The first /24 of the benchmarking range 198.18.0.0/16 that nothing here uses."""
    for candidate in SUBNET_POOL.subnets(new_prefix=24):
        if not any(candidate.overlaps(t.network) for t in taken):
            return str(candidate)
    raise AddressRangeTaken(str(SUBNET_POOL), "every /24 in it")


# --- processes -------------------------------------------------------------------------------


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pids_with_args(*needles: str) -> list[int]:
    """Processes whose argv contains every needle as a whole argument."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            args = cmdline(int(entry.name))
            if args and all(n in args for n in needles):
                found.append(int(entry.name))
    return sorted(found)


def is_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def process_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def pid_namespace_members(init_pid: int) -> list[int]:
    """Every process (seen from here) that lives in the pid namespace of init_pid."""
    try:
        target = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return []
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(f"/proc/{entry.name}/ns/pid") == target:
                    members.append(int(entry.name))
            except OSError:
                continue
    return members


def signal_pid(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(is_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return not any(is_alive(p) for p in pids)


# --- mounts ----------------------------------------------------------------------------------


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below path, deepest first (the order to unmount them in)."""
    prefix = str(path.resolve()) if path.exists() else str(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_all(path: Path) -> None:
    for point in mounts_under(path):
        if local.run(("umount", str(point)), check=False, timeout=60).ok:
            continue
        local.run(("umount", "--lazy", str(point)), check=False, timeout=60)


def remove_tree(path: Path) -> None:
    """Remove a directory that may hold mounts (a killed debootstrap leaves /proc mounted):
    unmount everything below it first, and never cross into another filesystem."""
    if not path.exists():
        return
    unmount_all(path)
    local.run(("rm", "-rf", "--one-file-system", str(path)), timeout=600)


def loop_devices_for(backing: Path) -> list[str]:
    out = local.run(("losetup", "--json", "--list"), check=False).stdout
    devices = json.loads(out).get("loopdevices", []) if out.strip() else []
    prefix = str(backing)
    return [d["name"] for d in devices if str(d.get("back-file", "")).startswith(prefix)]


def pids_with_root(root: Path) -> list[int]:
    """Processes whose root directory is `root` (a node's processes, even orphaned ones)."""
    wanted = str(root)
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "root") == wanted:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# Each node's systemd, journald, logind and udev hold inotify instances of their own; with the
# kernel default of 128 per user (all nodes run as root) about 20 nodes exhaust it and the next
# ones never finish booting.
INOTIFY_PER_NODE = {"fs.inotify.max_user_instances": 64, "fs.inotify.max_user_watches": 16384}


def raise_inotify_limits(nodes: int) -> list[str]:
    """Raise the inotify limits for `nodes` more nodes if they are lower; say what changed."""
    changed = []
    for key, per_node in INOTIFY_PER_NODE.items():
        path = Path("/proc/sys") / key.replace(".", "/")
        current = int(path.read_text())
        wanted = 128 + per_node * nodes
        if current < wanted:
            path.write_text(f"{wanted}\n")
            changed.append(f"{key} {current} -> {wanted}")
    return changed
