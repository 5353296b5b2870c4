"""The sandbox's ways in, as a real cluster has them: a bastion that is the only way in from
this machine (`--bastion`), and a sudo user kato logs in as instead of root (`--user`)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from kato.sandbox import clusterfile
from kato.sandbox.model import Node, Sandbox
from kato.transport import local

BASTION_ONLY = "etc/ssh/sshd_config.d/kato-bastion-only.conf"


def make_sudo_password(sandbox: Sandbox) -> None:
    """A random password for the sudo user, in a file only root reads (never in argv)."""
    path = clusterfile.sudo_password_path(sandbox)
    if sandbox.user is None or path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(18) + "\n")


def prepare(sandbox: Sandbox, node: Node, root: Path, admin_key: str) -> None:
    """Before the node boots: its sshd rule and its sudo user, as the sandbox asks."""
    if sandbox.bastion and node != sandbox.bastion_node:
        # sshd refuses every login from this machine's address on the bridge: the nodes are
        # reached from here only through the bastion (they still reach each other).
        (root / BASTION_ONLY).write_text(
            "# written by `kato sandbox up --bastion`: no logins straight from the host\n"
            f"DenyUsers *@{sandbox.gateway}\n"
        )
    if sandbox.user is not None and node in sandbox.cluster_nodes:
        _add_sudo_user(sandbox, sandbox.user, root, admin_key)


def _add_sudo_user(sandbox: Sandbox, user: str, root: Path, admin_key: str) -> None:
    if f"\n{user}:" not in "\n" + (root / "etc/passwd").read_text():
        local.run(("useradd", "--root", str(root), "-m", "-G", "sudo", "-s", "/bin/sh", user))
    password = clusterfile.sudo_password_path(sandbox).read_text().strip()
    local.run(("chpasswd", "--root", str(root)), input_text=f"{user}:{password}\n")
    uid, gid = _ids(root, user)
    ssh_dir = root / "home" / user / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(admin_key.strip() + "\n")
    keys.chmod(0o600)
    for path in (ssh_dir, keys):
        os.chown(path, uid, gid)


def _ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise LookupError(f"{user} is not in {root}/etc/passwd")
