"""The session's sandbox cluster (brought up once, torn down at the end) and testinfra hosts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import testinfra

# Every sandbox a test run makes is named PREFIX + a word, so two checkouts testing side by side
# (KATO_TEST_PREFIX=k9 in one of them) never touch each other's sandboxes.
PREFIX = os.environ.get("KATO_TEST_PREFIX", "kato")


def sandbox_name(word: str) -> str:
    return f"{PREFIX}{word}"


NAME = sandbox_name("test")
KATO = (sys.executable, "-m", "kato")


def missing_requirement() -> str | None:
    """Why the sandbox cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (the sandbox makes network devices, mounts and containers)"
    for tool in ("systemd-nspawn", "debootstrap", "ip", "ssh"):
        if shutil.which(tool) is None:
            return f"needs {tool} (scripts/test installs it)"
    return None


def kato(
    *args: str,
    check: bool = True,
    timeout: float = 900,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> subprocess.CompletedProcess[str]:
    argv = (*KATO, *args)
    if user:
        # an unprivileged uid that may still read the checkout wherever CI cloned it
        argv = (
            "setpriv",
            f"--reuid={user}",
            f"--regid={user}",
            "--clear-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
            *argv,
        )
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"kato {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


@dataclass(frozen=True)
class Cluster:
    name: str
    home: Path
    status: dict[str, object]

    @property
    def nodes(self) -> list[dict[str, object]]:
        nodes: list[dict[str, object]] = list(self.status["nodes"])  # type: ignore[call-overload]
        return nodes

    def address(self, node: str) -> str:
        return next(str(n["address"]) for n in self.nodes if n["name"] == node)

    @property
    def ssh_config(self) -> Path:
        return self.home / "ssh_config"

    def host(self, node: str) -> testinfra.host.Host:
        return testinfra.get_host(f"ssh://{node}?controlpersist=0", ssh_config=str(self.ssh_config))

    def ssh(self, node: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ("ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", node, command),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def boot_id(self, node: str) -> str:
        return str(self.host(node).file("/proc/sys/kernel/random/boot_id").content_string).strip()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    reason = missing_requirement()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"integration tests must run in CI, but the sandbox {reason}")
        pytest.skip(f"sandbox {reason}")
    kato("sandbox", "down", "--name", NAME)  # a previous run killed half-way
    up = kato("sandbox", "up", "--name", NAME, "--nodes", "3", "--json")
    status = json.loads(up.stdout)
    home = Path(status["cluster_file"]).parent
    try:
        yield Cluster(NAME, home, status)
    finally:
        kato("sandbox", "down", "--name", NAME)


def cluster_copy(
    cluster: Cluster, directory: Path, known_hosts: str | None = None, **ssh: object
) -> Path:
    """A copy of the sandbox's cluster file with other ssh settings (and known_hosts text)."""
    import yaml

    document = yaml.safe_load((cluster.home / "cluster.yaml").read_text())
    if known_hosts is not None:
        path = directory / "known_hosts"
        path.write_text(known_hosts)
        path.chmod(0o600)
        document["ssh"]["known_hosts"] = str(path)
    document["ssh"].update(ssh)
    target = directory / "cluster.yaml"
    target.write_text(yaml.safe_dump(document))
    return target
