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
the program is tested on temporary directories. Every refusal exits 3 with one line saying why
(the filesystem or kernel cannot carry the quotas: nothing was changed); limiting the apps
under DIR that fails part way (an app's directory vanished, a copy or a limit failed) exits 4,
naming the app: the apps before it are limited subvolumes already; a symbolic link (or a swap)
where kato works in an app's directory exits 1, naming the path.
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import importlib
import json
import os
import re
import secrets
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

EXT4_OPTIONS = "usrjquota=aquota.user,grpjquota=aquota.group,jqfmt=vfsv0"
XFS_OPTIONS = ("uquota", "usrquota", "quota", "uqnoenforce", "pquota", "prjquota", "pqnoenforce")
UNIT = "etc/systemd/system/kato-quota@.service"
SUBVOLUME_ROOT = 256  # the inode number of every btrfs subvolume's top directory
SUBVOL_CREATE = 0x5000940E  # BTRFS_IOC_SUBVOL_CREATE: _IOW(0x94, 14, btrfs_ioctl_vol_args)
OURS = re.compile(r"\A\..+\.kato-(subvol|old)-[0-9a-f]{12}\Z")  # our temporary names
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


class AppsFailed(Exception):
    """Limiting the apps under DIR stopped part way; the apps before it are done."""


REFUSED, APPS_FAILED = 3, 4  # exit statuses (kato/relocate/quotas.py reads them)


try:  # kato/remote/safe_write.py: shipped beside this program on a node, a module of kato here
    SAFE = importlib.import_module("safe_write")
except ImportError:
    SAFE = importlib.import_module("kato.remote.safe_write")


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


def run(*argv: str, pass_fds: tuple[int, ...] = ()) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, pass_fds=pass_fds)
    if done.returncode != 0:
        last = done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}"
        raise Refused(f"{' '.join(argv[:3])}: {last.splitlines()[-1]}")
    return done.stdout


def setup_btrfs(mount: str, directory: str, limit: int) -> dict[str, Any]:
    """Quotas on (idempotent); with a DIRECTORY (not "-"), a limited subvolume per app in it.

    An app's directory sits in a directory its user can write, so it is never used by path:
    DIRECTORY is opened once without following a link, each app from that fd, and everything
    after (the copy into a subvolume, the swap, the limit) works from those fds."""
    if _btrfs_state(mount) != "on":
        run("btrfs", "quota", "enable", mount)
    apps: dict[str, int] = {}
    if directory == "-":
        return {"apps": apps}
    try:
        top = open_data_dir(directory)
    except (Refused, OSError) as exc:
        raise AppsFailed(
            f"the apps' directory {directory}: {_why(exc, 'no such directory')}"
        ) from None
    try:
        entries = [e for e in sorted(os.listdir(top)) if not OURS.match(e)]
        for entry in entries:  # a link among the apps is refused before any app is changed
            _refuse_link(top, f"{directory}/{entry}", entry)
        for entry in entries:
            try:
                if _limit_app(top, directory, entry, limit):
                    apps[entry] = limit
            except (Refused, OSError) as exc:
                done = f"{len(apps)} limited before it" if apps else "none limited before it"
                raise AppsFailed(f"app {directory}/{entry}: {_why(exc)} ({done})") from None
    except FileNotFoundError as exc:  # an app removed between the listing and its check
        raise AppsFailed(f"app {directory}/{exc.filename}: it vanished") from None
    finally:
        os.close(top)
    return {"apps": apps}


def _why(exc: Exception, missing: str = "it vanished (no such directory)") -> str:
    if isinstance(exc, FileNotFoundError):
        return missing
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def open_data_dir(directory: str) -> int:
    """DIRECTORY's fd: its parents walked from / without following links (root's, writable by
    nobody else), then DIRECTORY itself (the role's, whoever owns it) opened O_NOFOLLOW."""
    parent, name = os.path.split(directory.rstrip("/"))
    parent_fd = SAFE.open_dir(parent or "/")
    try:
        return _open_child(parent_fd, name, directory)
    finally:
        os.close(parent_fd)


def _open_child(dir_fd: int, name: str, shown: str) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(dir_fd, name):
            raise SAFE.Unsafe(f"{shown} is a symbolic link: refusing to work through it") from None
        raise  # the caller names the app


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _refuse_link(top: int, shown: str, name: str) -> os.stat_result:
    info = os.stat(name, dir_fd=top, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(name, dir_fd=top)
        raise SAFE.Unsafe(f"{shown} is a symbolic link (to {target}): refusing to work through it")
    return info


def _limit_app(top: int, directory: str, name: str, limit: int) -> bool:
    """App NAME (a directory under top) a subvolume limited to `limit` bytes; False when NAME
    is a plain file (not an app). A symbolic link there is refused, naming it."""
    shown = f"{directory}/{name}"
    info = _refuse_link(top, shown, name)
    if not stat.S_ISDIR(info.st_mode):
        return False
    app = _open_child(top, name, shown)
    try:
        if not is_subvolume(os.fstat(app)):
            subvolume = _into_subvolume(top, name, app, shown)
            os.close(app)
            app = subvolume
        run("btrfs", "qgroup", "limit", str(limit), fd_path(app), pass_fds=(app,))
    finally:
        os.close(app)
    return True


def is_subvolume(info: os.stat_result) -> bool:
    return info.st_ino == SUBVOLUME_ROOT


def fd_path(fd: int) -> str:
    """A path naming the open fd itself (passed to the child), never re-resolved by name."""
    return f"/proc/self/fd/{fd}"


def create_subvolume(dir_fd: int, name: str) -> None:
    """A new, empty subvolume NAME in the directory dir_fd (BTRFS_IOC_SUBVOL_CREATE)."""
    args = bytearray(struct.pack("q4088s", 0, name.encode()))  # mutable: no 1 KiB cap
    fcntl.ioctl(dir_fd, SUBVOL_CREATE, args, True)


def _into_subvolume(top: int, name: str, app: int, shown: str) -> int:
    """Replace app NAME (open as `app`) by a subvolume holding the same tree (a reflink copy),
    by name only inside top, checking the name still holds the directory opened before; the
    new subvolume's fd."""
    tag = secrets.token_hex(6)
    staged, aside = f".{name}.kato-subvol-{tag}", f".{name}.kato-old-{tag}"
    create_subvolume(top, staged)
    try:
        new = _open_child(top, staged, f"{shown} (staged)")
        made, was = os.fstat(new), os.fstat(app)
        if made.st_uid != 0 or not is_subvolume(made):  # replaced since kato made it
            os.close(new)
            raise SAFE.Unsafe(f"{shown}: the subvolume kato made beside it was replaced; refusing")
        os.fchown(new, was.st_uid, was.st_gid)
        os.fchmod(new, stat.S_IMODE(was.st_mode))
        run("cp", "-a", "--reflink=always", "--no-target-directory", fd_path(app) + "/.",
            fd_path(new) + "/.", pass_fds=(app, new))  # fmt: skip
    except BaseException:
        shutil.rmtree(staged, dir_fd=top, ignore_errors=True)
        raise
    try:
        _swap(top, name, staged, aside, was, shown)
    except BaseException:
        os.close(new)
        shutil.rmtree(staged, dir_fd=top, ignore_errors=True)
        raise
    shutil.rmtree(aside, dir_fd=top)  # fd-based: never follows a link the app made inside
    return new


def _swap(top: int, name: str, staged: str, aside: str, was: os.stat_result, shown: str) -> None:
    """NAME aside, then the staged subvolume in its place; when what was moved aside is not the
    directory copied (it was swapped meanwhile), it goes back and nothing is replaced."""
    os.rename(name, aside, src_dir_fd=top, dst_dir_fd=top)
    moved = os.stat(aside, dir_fd=top, follow_symlinks=False)
    if (moved.st_dev, moved.st_ino) != (was.st_dev, was.st_ino):
        os.rename(aside, name, src_dir_fd=top, dst_dir_fd=top)
        raise SAFE.Unsafe(f"{shown} was replaced while kato copied it: refusing to work through it")
    try:
        os.rename(staged, name, src_dir_fd=top, dst_dir_fd=top)
    except OSError:
        os.rename(aside, name, src_dir_fd=top, dst_dir_fd=top)
        raise SAFE.Unsafe(f"{shown} appeared again while kato copied it: refusing") from None


def setup_ext4(root: Path, mount: str) -> dict[str, Any]:
    found = check(root, "ext4", mount, "")
    if not found["supported"]:
        raise Refused(found["why"])
    run("mount", "-o", f"remount,{EXT4_OPTIONS}", mount)
    run("quotacheck", "-vgumb", mount)
    run("quotaon", "-v", "-ug", mount)
    SAFE.write_file(str(root / UNIT), [UNIT_TEXT.encode()], 0o644)
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
                SAFE.write_file(str(fstab), [("\n".join(lines) + "\n").encode()], 0o644)
            raise Refused(
                f"/etc/fstab now mounts {mount} with uquota, which xfs takes only at mount "
                f"time: unmount and mount {mount} again (or reboot), then run kato relocate again"
            )
    raise Refused(
        f"{mount} has no /etc/fstab line, so kato cannot give it the uquota option xfs needs "
        "at mount time: mount it with -o uquota (and add that to how it is mounted at boot)"
    )


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
    except SAFE.Unsafe as exc:  # a link or a swap where kato works: not a quota problem
        print(f"quota: refused: {exc}", file=sys.stderr)
        return 1
    except AppsFailed as exc:
        print(f"quota: limiting the apps stopped: {exc}", file=sys.stderr)
        return APPS_FAILED
    except (Refused, OSError) as exc:
        print(f"quota: {exc}", file=sys.stderr)
        return REFUSED
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
