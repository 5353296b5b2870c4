"""Host keys: kato's own known_hosts (checked before it is trusted), fingerprints, and the
policy that refuses a key kato does not know, saying what was offered."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kato.errors import HostKeyRefused

if TYPE_CHECKING:
    import paramiko


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_problem(path: Path) -> str | None:
    """Why this known_hosts file cannot be trusted, or None."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return f"there is no known_hosts file at {path}"
    if stat.S_ISLNK(info.st_mode):
        return f"{path} is a symbolic link (kato trusts only a real file)"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    if info.st_mode & 0o022:
        return f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    if info.st_uid not in (0, os.geteuid()):
        return f"{path} is owned by uid {info.st_uid}, not by root or you"
    return None


def load_host_keys(path: Path, node: str, missing_ok: bool = False) -> paramiko.HostKeys:
    """The keys kato trusts; `missing_ok` (kato node trust, which creates the file): a file
    not there yet holds none, so a jump host on the way is refused naming its key."""
    import paramiko

    logging.getLogger("paramiko").addHandler(logging.NullHandler())  # errors reach us as data
    logging.getLogger("paramiko").propagate = False
    problem = known_hosts_problem(path)
    if problem and missing_ok and not os.path.lexists(path):
        return paramiko.HostKeys()
    if problem:
        missing = problem.startswith("there is no known_hosts")
        raise HostKeyRefused(
            node,
            problem,
            None,
            hint=f"record the node's key with `kato node trust --node {node}` (it creates the file)"
            if missing
            else "make it a regular file owned by root with mode 0600 or 0644, and record "
            f"keys with `kato node trust --node {node}`",
        )
    try:
        return paramiko.HostKeys(str(path))
    except (OSError, paramiko.SSHException) as exc:
        raise HostKeyRefused(
            node, f"cannot read {path}: {exc}", None, hint="fix or remove the bad line"
        ) from None


def refuse_unknown(
    node: str, known_hosts: str, jump: bool = False
) -> paramiko.MissingHostKeyPolicy:
    """paramiko's missing-host-key policy for kato: refuse, and say what was offered."""
    import paramiko

    class RefuseUnknown(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
            trust = (
                f"add the line `{hostname} {key.get_name()} {key.get_base64()}` to {known_hosts} "
                "(or `kato node trust --from-known-hosts FILE` takes it from an OpenSSH "
                "known_hosts, jump hosts included)"
                if jump
                else f"`kato node trust --node {node} --fingerprint {fingerprint(key)}`"
            )
            raise HostKeyRefused(
                node,
                f"{hostname} is not in {known_hosts}",
                fingerprint(key),
                hint=f"check the fingerprint out of band, then {trust}",
            )

    return RefuseUnknown()
