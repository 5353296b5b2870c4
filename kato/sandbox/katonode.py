"""kato installed on the sandbox's core node, as in production: cron there can run kato."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import yaml

from kato.errors import CommandFailed, KatoError
from kato.progress import Progress
from kato.sandbox import clusterfile, host, image
from kato.sandbox import node as nodes
from kato.sandbox.model import Sandbox
from kato.transport import local

CHECKOUT = Path(__file__).resolve().parents[2]
SOURCES = (
    "kato",
    "roles",
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
)  # what `pip install` reads, + roles
NODE_HOME = "opt/kato"  # on the node: site/ (kato and its dependencies) and roles/
NODE_CONFIG = "etc/kato"
WRAPPER = """\
#!/usr/bin/python3
# written by `kato sandbox up`: the kato installed in /opt/kato (cluster file /etc/kato), a
# script like pip's console scripts, so kato knows its own path (cron lines name it)
import os
import sys

sys.path.insert(0, "/opt/kato/site")
os.environ.setdefault("KATO_ROLES", "/opt/kato/roles")
from kato.cli.start import main

main()
"""
PIP_TIMEOUT = 600.0
UNUSED_DAYS = 7


def source_key(checkout: Path = CHECKOUT) -> str:
    """A hash of every file pip and the roles directory would take from the checkout."""
    digest = hashlib.sha256()
    for path in _source_files(checkout):
        digest.update(str(path.relative_to(checkout)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _source_files(checkout: Path) -> list[Path]:
    found: list[Path] = []
    for name in SOURCES:
        top = checkout / name
        candidates = [top] if top.is_file() else sorted(top.rglob("*"))
        found += [
            p
            for p in candidates
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        ]
    return found


def tree_dir(key: str | None = None) -> Path:
    return image.cache_root() / "kato" / (key or source_key())


def ensure_tree(progress: Progress, checkout: Path = CHECKOUT) -> Path:
    """The cached install tree (site/ and roles/) of this checkout, built with pip if new."""
    final = tree_dir(source_key(checkout))
    with _tree_lock():
        if not (final / "site" / "kato").is_dir():
            _build(final, checkout, progress)
            _prune_unused(final)
        os.utime(final)  # marks it used; trees unused for UNUSED_DAYS are pruned
    return final


@contextmanager
def _tree_lock() -> Iterator[None]:
    root = image.cache_root() / "kato"
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build(final: Path, checkout: Path, progress: Progress) -> None:
    progress.step(f"installing kato into {final} with pip (once per kato source; cached)")
    work = final.with_name(f".build-{final.name}")
    host.remove_tree(work)  # left by a build that was killed; we hold the lock
    source = work / "source"  # a clean copy: pip's build writes into the tree it builds
    source.mkdir(parents=True)
    for name in SOURCES:
        if (checkout / name).is_dir():
            shutil.copytree(checkout / name, source / name, ignore=_no_bytecode)
        else:
            shutil.copy2(checkout / name, source / name)
    argv = (sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
    try:
        local.run((*argv, "--target", str(work / "site"), str(source)), timeout=PIP_TIMEOUT)
    except CommandFailed as exc:
        host.remove_tree(work)
        raise KatoError(
            f"could not install kato for the core node: {exc.message}",
            hint="pip must reach the package registry (or its cache must hold kato's "
            "dependencies); or use `kato sandbox up --bare`",
        ) from None
    shutil.move(source / "roles", work / "roles")
    host.remove_tree(source)
    os.replace(work, final)


def _no_bytecode(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith(".pyc")]


def _prune_unused(keep: Path) -> None:
    cutoff = time.time() - UNUSED_DAYS * 86400
    for tree in keep.parent.iterdir():
        if tree != keep and not tree.name.startswith(".") and tree.stat().st_mtime < cutoff:
            host.remove_tree(tree)


def install(sandbox: Sandbox, progress: Progress) -> None:
    """Copy kato onto the core node with a wrapper, and a cluster file that reaches every
    node from there with the sandbox's admin key."""
    tree = ensure_tree(progress)
    core = sandbox.core
    progress.step(f"installing kato on {core.name} (/usr/local/bin/kato, /etc/kato)")
    root = nodes.root_dir(sandbox, core)
    target = root / NODE_HOME
    host.remove_tree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # written through the node's overlay mount, so it lasts across the node's reboots
    local.run(("cp", "-a", str(tree), str(target)), timeout=120)
    wrapper = root / "usr/local/bin/kato"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    _write_config(sandbox, root / NODE_CONFIG)


def node_cluster_document(sandbox: Sandbox) -> dict[str, object]:
    """The sandbox's cluster file as seen from the core node: its key and known_hosts there."""
    document = clusterfile.cluster_document(sandbox)
    ssh = {
        **cast(dict[str, object], document["ssh"]),
        "user": "root",  # cron runs kato as root there
        "identity_file": "/etc/kato/id_ed25519",
        "known_hosts": "/etc/kato/known_hosts",
    }
    for key in ("config", "sudo_password_file"):  # the core reaches the nodes directly
        ssh.pop(key, None)
    document["ssh"] = ssh
    document.pop("releases", None)  # the release repository lives on this machine only
    return document


def _write_config(sandbox: Sandbox, etc: Path) -> None:
    etc.mkdir(mode=0o700, parents=True, exist_ok=True)
    etc.chmod(0o700)
    header = f"# written by `kato sandbox up --name {sandbox.name}` for kato on this node\n"
    files = {
        "cluster.yaml": header + yaml.safe_dump(node_cluster_document(sandbox), sort_keys=False),
        "id_ed25519": clusterfile.identity_path(sandbox).read_text(),
        "known_hosts": clusterfile.known_hosts_path(sandbox).read_text(),
    }
    for name, text in files.items():
        fd = os.open(etc / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(etc / name, 0o600)
