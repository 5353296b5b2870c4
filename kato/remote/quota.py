"""The node side of quotas: a standalone program (standard library only) kato runs on a node as
`python3 - ROOT COMMAND ARGS...` with this file on stdin.

    check FSTYPE MOUNT OPTIONS    can this filesystem carry per-app quotas here, and are they
                                  on? {"supported", "why", "state"} as JSON
    setup-btrfs MOUNT DIR LIMIT   quotas enabled on MOUNT, every directory right under DIR a
                                  subvolume (converted in place when it is not) with a qgroup
                                  limit of LIMIT bytes: {"apps": {NAME: LIMIT}} as JSON
    setup-ext4 MOUNT              journaled quotas: remount with usrjquota/grpjquota, quotacheck,
                                  quotaon, and a boot unit doing the same after a reboot
    setup-xfs MOUNT               the mount option xfs needs at mount time, in /etc/fstab

Whether the kernel can do it is read from its configuration (/proc/config.gz, else
/boot/config-RELEASE), so a refusal names the missing option; ROOT prefixes those paths, so
the program is tested on temporary directories. Every refusal exits 3 with one line saying why.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

EXT4_OPTIONS = "usrjquota=aquota.user,grpjquota=aquota.group,jqfmt=vfsv0"
XFS_OPTIONS = ("uquota", "usrquota", "quota", "uqnoenforce", "pquota", "prjquota", "pqnoenforce")
UNIT = "etc/systemd/system/kato-quota@.service"
UNIT_TEXT = """\
# written by kato relocate: journaled quotas on %f after every boot (docs/relocate.md)
[Unit]
Description=kato: quotas on %f
RequiresMountsFor=%f
Before=kato-dea.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount -o remount,usrjquota=aquota.user,grpjquota=aquota.group,jqfmt=vfsv0 %f
ExecStart=/sbin/quotaon -ug %f

[Install]
WantedBy=multi-user.target
"""


class Refused(Exception):
    """This filesystem cannot carry the quotas here; nothing was changed."""


def kernel_config(root: Path) -> dict[str, str] | None:
    """CONFIG_X → y/m/n of the running kernel, or None when it cannot be read."""
    text = None
    try:
        text = gzip.decompress((root / "proc/config.gz").read_bytes()).decode()
    except OSError:
        try:
            text = (root / "boot" / f"config-{os.uname().release}").read_text()
        except OSError:
            return None
    found = {}
    for line in text.splitlines():
        if match := re.match(r"^(CONFIG_\w+)=(\S+)$", line):
            found[match.group(1)] = match.group(2)
        elif match := re.match(r"^# (CONFIG_\w+) is not set$", line):
            found[match.group(1)] = "n"
    return found


def _has(config: dict[str, str] | None, option: str) -> bool | None:
    return None if config is None else config.get(option, "n") in ("y", "m")


def check(root: Path, fstype: str, mount: str, options: str) -> dict[str, Any]:
    config = kernel_config(root)
    live = root == Path("/")
    if fstype == "btrfs":
        tool = shutil.which("btrfs") is not None or not live
        why = (
            "" if tool else "btrfs-progs is not installed on the node (apt-get install btrfs-progs)"
        )
        state = _btrfs_state(mount) if live and tool else "unknown"
        return {"supported": tool, "why": why, "state": state}
    if fstype == "ext4":
        if _has(config, "CONFIG_QUOTA") is False:
            return _no("this kernel has no disk quotas at all (CONFIG_QUOTA is not set)")
        if _has(config, "CONFIG_QFMT_V2") is False and not (root / "sys/module/quota_v2").exists():
            return _no(
                "this kernel has no quota format module (CONFIG_QFMT_V2 is not set), so "
                'quotaon would fail with "Quota format not supported in kernel"'
            )
        if live and shutil.which("quotaon") is None:
            return _no("the quota tools are not installed on the node (apt-get install quota)")
        on = "usrjquota=" in options or "usrquota" in options.split(",")
        return {"supported": True, "why": "", "state": _ext4_state(mount) if on and live else "off"}
    if fstype == "xfs":
        if _has(config, "CONFIG_XFS_QUOTA") is False:
            return _no("this kernel's xfs has no quota support (CONFIG_XFS_QUOTA is not set)")
        on = any(o in options.split(",") for o in XFS_OPTIONS)
        return {"supported": True, "why": "", "state": "on" if on else "off (needs a remount)"}
    return _no(f"{fstype} cannot carry kato's per-app quotas (btrfs, ext4 and xfs can)")


def _no(why: str) -> dict[str, Any]:
    return {"supported": False, "why": why, "state": "unsupported"}


def _btrfs_state(mount: str) -> str:
    done = subprocess.run(["btrfs", "qgroup", "show", mount], capture_output=True, text=True)
    return "on" if done.returncode == 0 else "off"


def _ext4_state(mount: str) -> str:
    done = subprocess.run(["quotaon", "-p", "-u", mount], capture_output=True, text=True)
    return "on" if " is on" in done.stdout else "off"


def run(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True)
    if done.returncode != 0:
        last = done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}"
        raise Refused(f"{' '.join(argv[:3])}: {last.splitlines()[-1]}")
    return done.stdout


def setup_btrfs(mount: str, directory: str, limit: int) -> dict[str, Any]:
    """Quotas on (idempotent); with a DIRECTORY (not "-"), a limited subvolume per app in it."""
    if _btrfs_state(mount) != "on":
        run("btrfs", "quota", "enable", mount)
    apps: dict[str, int] = {}
    if directory == "-":
        return {"apps": apps}
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if os.path.islink(path) or not os.path.isdir(path):
            continue
        if os.lstat(path).st_ino != 256:  # not a subvolume yet: make it one, same content
            _into_subvolume(path)
        run("btrfs", "qgroup", "limit", str(limit), path)
        apps[entry] = limit
    return {"apps": apps}


def _into_subvolume(path: str) -> None:
    """Replace directory path by a subvolume holding the same tree (a reflink copy)."""
    staged = path + ".kato-subvol"
    if os.path.lexists(staged):
        run("btrfs", "subvolume", "delete", staged)
    run("btrfs", "subvolume", "create", staged)
    st = os.lstat(path)
    os.chown(staged, st.st_uid, st.st_gid)
    os.chmod(staged, st.st_mode & 0o7777)
    run("cp", "-a", "--reflink=always", "--no-target-directory", path + "/.", staged)
    aside = path + ".kato-old"
    os.rename(path, aside)
    os.rename(staged, path)
    shutil.rmtree(aside)


def setup_ext4(root: Path, mount: str) -> dict[str, Any]:
    found = check(root, "ext4", mount, "")
    if not found["supported"]:
        raise Refused(found["why"])
    run("mount", "-o", f"remount,{EXT4_OPTIONS}", mount)
    run("quotacheck", "-vgumb", mount)
    run("quotaon", "-v", "-ug", mount)
    (root / UNIT).write_text(UNIT_TEXT, encoding="utf-8")
    unit = run("systemd-escape", "--path", "--template=kato-quota@.service", mount).strip()
    run("systemctl", "daemon-reload")
    run("systemctl", "enable", unit)
    return {"unit": unit}


def setup_xfs(root: Path, mount: str) -> dict[str, Any]:
    """xfs takes its quota option only when mounted: put it in fstab, then a remount is due."""
    found = check(root, "xfs", mount, "")
    if not found["supported"]:
        raise Refused(found["why"])
    fstab = root / "etc/fstab"
    lines = fstab.read_text(encoding="utf-8").splitlines() if fstab.is_file() else []
    for index, line in enumerate(lines):
        fields = line.split()
        if len(fields) >= 4 and not line.lstrip().startswith("#") and fields[1] == mount:
            options = fields[3].split(",")
            if not any(o in options for o in XFS_OPTIONS):
                fields[3] = ",".join([*options, "uquota"])
                lines[index] = "\t".join(fields)
                write_safely(fstab, "\n".join(lines) + "\n")
            raise Refused(
                f"/etc/fstab now mounts {mount} with uquota, which xfs takes only at mount "
                f"time: unmount and mount {mount} again (or reboot), then run kato relocate again"
            )
    raise Refused(
        f"{mount} has no /etc/fstab line, so kato cannot give it the uquota option xfs needs "
        "at mount time: mount it with -o uquota (and add that to how it is mounted at boot)"
    )


def write_safely(path: Path, text: str) -> None:
    if path.is_symlink():
        raise Refused(f"{path} is a symlink; kato never writes through one")
    tmp = path.with_name(f".{path.name}.kato-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    root, command, args = Path(argv[0]), argv[1], argv[2:]
    try:
        if command == "check" and len(args) == 3:
            result = check(root, *args)
        elif command == "setup-btrfs" and len(args) == 3:
            result = setup_btrfs(args[0], args[1], int(args[2]))
        elif command == "setup-ext4" and len(args) == 1:
            result = setup_ext4(root, args[0])
        elif command == "setup-xfs" and len(args) == 1:
            result = setup_xfs(root, args[0])
        else:
            print(f"quota: unknown command or arguments: {command}", file=sys.stderr)
            return 2
    except (Refused, OSError) as exc:
        print(f"quota: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
