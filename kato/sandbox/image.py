"""The node image: a Debian bookworm root built once with debootstrap and cached by its recipe."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kato.errors import KatoError, UsageError
from kato.progress import Progress
from kato.sandbox import host
from kato.transport import local

SUITE = "bookworm"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "iproute2",
    "procps",
    "python3",
    "sudo",
    "ca-certificates",
    "curl",
    "cron",
    "rsync",
    "zstd",
    "btrfs-progs",
    "xfsprogs",
    "quota",
    "e2fsprogs",
    "nginx-light",
    "postgresql",
    "redis-server",
    "haproxy",
)
# Services the roles start themselves; an idle node runs only systemd, journald, sshd and cron.
DISABLED_UNITS = (
    "nginx.service",
    "postgresql.service",
    "redis-server.service",
    "haproxy.service",
    "e2scrub_reap.service",
)
# Bump when the customisation below changes: it is part of the cache key.
RECIPE_VERSION = 1
SSHD_CONFIG = """\
# written by kato sandbox: keys only, one host key made per node at first boot by kato
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
"""
BUILD_TIMEOUT = 1800.0


class ImageBuildFailed(KatoError):
    def __init__(self, reason: str, log: Path) -> None:
        super().__init__(
            f"could not build the node image: {reason}",
            hint=f"see the full log in {log}; check that apt can reach its mirror "
            "(apt-get update), or pass --mirror URL",
        )
        self.log = log


def cache_root() -> Path:
    return Path(os.environ.get("KATO_SANDBOX_CACHE", "/var/cache/kato-sandbox"))


def recipe_key() -> str:
    recipe = {
        "suite": SUITE,
        "packages": sorted(PACKAGES),
        "disabled": sorted(DISABLED_UNITS),
        "sshd": SSHD_CONFIG,
        "version": RECIPE_VERSION,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def image_dir(key: str | None = None) -> Path:
    return cache_root() / "images" / f"{SUITE}-{key or recipe_key()}"


def cached_image() -> Path | None:
    path = image_dir()
    return path / "root" if (path / "image.json").exists() else None


def apt_mirror(sources: Iterator[Path] | None = None) -> str | None:
    """The Debian mirror apt on this machine already uses for the suite, if any."""
    paths = list(sources) if sources is not None else _apt_source_files()
    for path in paths:
        try:
            text = path.read_text()
        except OSError:
            continue
        found = (_mirror_from_deb822 if path.suffix == ".sources" else _mirror_from_list)(text)
        if found:
            return found
    return None


def _apt_source_files() -> list[Path]:
    base = Path("/etc/apt")
    return [
        base / "sources.list",
        *sorted((base / "sources.list.d").glob("*.sources")),
        *sorted((base / "sources.list.d").glob("*.list")),
    ]


def _mirror_from_deb822(text: str) -> str | None:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, _, value = line.partition(":")
            if not key.startswith("#") and value:
                fields[key.strip().lower()] = value.strip()
        suites = fields.get("suites", "").split()
        if "deb" in fields.get("types", "").split() and SUITE in suites:
            uris = fields.get("uris", "").split()
            if uris and "security" not in uris[0]:
                return uris[0]
    return None


def _mirror_from_list(text: str) -> str | None:
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if parts[:1] == ["deb"]:
            parts = [p for p in parts[1:] if not p.startswith("[")]
            if len(parts) >= 2 and parts[1] == SUITE:
                return parts[0]
    return None


@contextmanager
def _build_lock() -> Iterator[None]:
    root = cache_root() / "images"
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_image(progress: Progress, mirror: str | None = None) -> Path:
    """The cached image root, building it first if this recipe has never been built here."""
    found = cached_image()
    if found:
        return found
    with _build_lock():
        found = cached_image()
        if found:
            return found
        return _build(progress, mirror or apt_mirror())


def _build(progress: Progress, mirror: str | None) -> Path:
    if not mirror:
        raise UsageError(
            "no Debian mirror found in apt's sources for " + SUITE,
            hint="pass --mirror URL (the Debian archive apt should use)",
        )
    images = cache_root() / "images"
    for stale in images.glob(".build-*"):
        host.remove_tree(stale)  # left by a build that was killed; we hold the lock
    final = image_dir()
    work = images / f".build-{final.name}"
    log = images / f"{final.name}.log"
    work.mkdir(mode=0o700)
    progress.step(f"building the node image {final.name} with debootstrap (once; cached)")
    try:
        _debootstrap(work / "root", mirror, log, progress)
        progress.step("customising the node image")
        _customise(work / "root")
        (work / "image.json").write_text(
            json.dumps(
                {"suite": SUITE, "packages": list(PACKAGES), "mirror": mirror, "key": recipe_key()},
                indent=2,
            )
            + "\n"
        )
        os.replace(work, final)
    except BaseException:
        host.remove_tree(work)
        raise
    return final / "root"


def _debootstrap(root: Path, mirror: str, log: Path, progress: Progress) -> None:
    argv = (
        "debootstrap",
        "--variant=minbase",
        "--include=" + ",".join(PACKAGES),
        SUITE,
        str(root),
        mirror,
    )
    last: list[str] = []

    def on_line(line: str) -> None:
        if line.startswith(
            (
                "I: Retrieving",
                "I: Validating",
                "I: Unpacking",
                "I: Configuring",
                "I: Installing",
                "I: Base",
            )
        ):
            progress.detail(line[3:])
        last[:] = [line] if line.startswith(("E:", "W:")) else last

    status = local.run_lines(argv, log=log, on_line=on_line, timeout=BUILD_TIMEOUT)
    host.unmount_all(root)  # debootstrap mounts proc/sys inside the target
    if status != 0:
        raise ImageBuildFailed(last[0] if last else f"debootstrap exited {status}", log)


def _customise(root: Path) -> None:
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()  # never share host keys through the image: each node gets its own
    (root / "etc" / "ssh" / "sshd_config.d" / "kato.conf").write_text(SSHD_CONFIG)
    (root / "etc" / "machine-id").write_text("")
    (root / "var" / "lib" / "dbus" / "machine-id").unlink(missing_ok=True)
    local.run(("systemctl", f"--root={root}", "disable", *DISABLED_UNITS), timeout=120)
    local.run(
        (
            "systemctl",
            f"--root={root}",
            "mask",
            "systemd-networkd-wait-online.service",
            "console-getty.service",
        ),
        timeout=120,
    )
