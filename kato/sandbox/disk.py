"""`kato sandbox disk`: give a node a loop-backed btrfs, ext4 or xfs filesystem (a volume)."""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import PurePosixPath

from kato.errors import KatoError, UsageError
from kato.sandbox import host, model
from kato.sandbox import node as nodes
from kato.sandbox.model import Disk, Sandbox
from kato.transport import local

SIZE = re.compile(r"\A([1-9][0-9]*)([MG])\Z")
MIN_BYTES = {"btrfs": 128 * 2**20, "ext4": 16 * 2**20, "xfs": 300 * 2**20}
MKFS = {
    "btrfs": ("mkfs.btrfs", "-q"),
    "ext4": ("mkfs.ext4", "-q", "-F"),
    "xfs": ("mkfs.xfs", "-q", "-f"),
}


def parse_size(size: str) -> int:
    match = SIZE.match(size)
    if not match:
        raise UsageError(f"disk size {size!r} is not valid", hint="use a size like 512M or 2G")
    return int(match.group(1)) * (2**20 if match.group(2) == "M" else 2**30)


def validate_target(at: str) -> str:
    path = PurePosixPath(at)
    if not path.is_absolute() or ".." in path.parts or len(path.parts) < 2 or "\0" in at:
        raise UsageError(f"--at {at!r} must be an absolute path below / such as /mnt/ebs")
    if path.parts[1] in ("proc", "sys", "dev", "run", "etc", "usr", "bin", "sbin", "lib"):
        raise UsageError(f"--at {at!r} would hide part of the node's system")
    return str(path)


def attach(sandbox_name: str, node_name: str, fs: str, size: str, at: str) -> Disk:
    sandbox = model.require(sandbox_name)
    node = sandbox.node(node_name)
    if fs not in MKFS:
        raise UsageError(f"--fs {fs!r} is not supported", hint="use --fs btrfs, ext4 or xfs")
    nbytes = parse_size(size)
    if nbytes < MIN_BYTES[fs]:
        raise UsageError(f"{fs} needs at least {MIN_BYTES[fs] // 2**20}M, not {size}")
    target = validate_target(at)
    if any(d.at == target for d in sandbox.disks_of(node)):
        raise UsageError(
            f"{node.name} already has a disk at {target}", hint="choose another --at path"
        )
    slug = target.strip("/").replace("/", "-")
    disk = Disk(node=node.name, at=target, fs=fs, size=size, slug=slug)
    image, mount = sandbox.disk_image(disk), sandbox.disk_mount(disk)
    image.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        local.run(("truncate", "-s", str(nbytes), str(image)))
        local.run((*MKFS[fs], str(image)), timeout=120)
        mount.mkdir(exist_ok=True)
        local.run(("mount", "-o", "loop", str(image), str(mount)), timeout=60)
        updated = replace(sandbox, disks=sandbox.disks + (disk,))
        model.save(updated)
        init = nodes.runtime(updated, node).init
        if init is not None:
            local.run(
                (sys.executable, "-m", "kato.sandbox.mountns", str(mount), str(init), target),
                timeout=30,
            )
    except KatoError:
        detach_files(sandbox, disk)
        model.save(sandbox)
        raise
    return disk


def detach_files(sandbox: Sandbox, disk: Disk) -> None:
    """Unmount a disk's host mount, free its loop device and delete its image."""
    mount, image = sandbox.disk_mount(disk), sandbox.disk_image(disk)
    host.unmount_all(mount)
    for device in host.loop_devices_for(image):
        local.run(("losetup", "-d", device), check=False)
    if mount.exists():
        mount.rmdir()
    image.unlink(missing_ok=True)


def detach(sandbox_name: str, node_name: str, at: str) -> Disk:
    """Unmount a disk inside the node, then remove it from the host (its data is gone)."""
    sandbox = model.require(sandbox_name)
    node = sandbox.node(node_name)
    target = validate_target(at)
    found = [d for d in sandbox.disks_of(node) if d.at == target]
    if not found:
        raise UsageError(
            f"{node.name} has no sandbox disk at {target}",
            hint=f"see `kato sandbox status --name {sandbox.name} --json`",
        )
    init = nodes.runtime(sandbox, node).init
    if init is not None:
        local.run(("nsenter", f"--target={init}", "--mount", "--", "umount", target), timeout=60)
    remaining = tuple(d for d in sandbox.disks if d != found[0])
    detach_files(sandbox, found[0])
    model.save(replace(sandbox, disks=remaining))
    return found[0]
