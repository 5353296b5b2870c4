"""`kato node check`: run each role's read-only testinfra checks against the nodes carrying it.

The checks live beside the roles (roles/<role>/test_<role>.py). kato runs them with pytest and
pytest-testinfra over OpenSSH, with an ssh_config made from the cluster file that trusts only
kato's known_hosts, and reads the verdicts back from pytest's JUnit XML report.
"""

from __future__ import annotations

import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from kato.config import Cluster, NodeConfig
from kato.connect import select_nodes
from kato.errors import KatoError, UsageError
from kato.status import roles_directory
from kato.transport import local

CHECK_TIMEOUT = 600.0


@dataclass(frozen=True)
class Check:
    node: str
    role: str
    name: str
    passed: bool
    message: str


def ssh_config(cluster: Cluster, nodes: tuple[NodeConfig, ...], sockets: Path) -> str:
    """OpenSSH settings that trust only kato's known_hosts, with one shared connection per
    node (each check is a command; a new connection for each would triple the time)."""
    ssh = cluster.ssh
    identity = (
        f"    IdentityFile {ssh.identity_file}\n    IdentitiesOnly yes\n"
        if ssh.identity_file
        else ""
    )
    return "".join(
        f"Host {n.name}\n    HostName {n.address}\n    Port {n.port}\n    User {ssh.user}\n"
        f"{identity}    UserKnownHostsFile {ssh.known_hosts}\n    StrictHostKeyChecking yes\n"
        f"    BatchMode yes\n    ConnectTimeout {int(ssh.connect_timeout)}\n"
        f"    ControlMaster auto\n    ControlPath {sockets}/%C\n    ControlPersist 5\n"
        for n in nodes
    )


def parse_report(xml_text: str, node: str) -> list[Check]:
    """One Check per test case of a JUnit XML report written by pytest."""
    checks = []
    for case in ElementTree.fromstring(xml_text).iter("testcase"):
        role = case.get("classname", "").split(".")[-1].removeprefix("test_")
        problem = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        name = case.get("name", "").split("[")[0]
        message = "" if problem is None else (problem.get("message") or problem.tag)
        checks.append(
            Check(
                node, role, name, problem is None, message.splitlines()[0][:300] if message else ""
            )
        )
    return checks


def check(cluster: Cluster, names: list[str] | None = None) -> list[Check]:
    nodes = select_nodes(cluster, names)
    directory = roles_directory()
    results: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="kato-check-") as tmp:
        config = Path(tmp) / "ssh_config"
        config.write_text(ssh_config(cluster, nodes, Path(tmp)))
        for node in nodes:  # one node at a time: the checks are read-only but not cheap
            files = [
                str(directory / r / f"test_{r}.py")
                for r in node.roles
                if (directory / r / f"test_{r}.py").exists()
            ]
            if not files:
                continue
            report = Path(tmp) / f"{node.name}.xml"
            done = local.run(
                (
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "--rootdir",
                    str(directory),
                    f"--hosts=ssh://{node.name}",
                    f"--ssh-config={config}",
                    f"--junitxml={report}",
                    *files,
                ),
                timeout=CHECK_TIMEOUT,
                check=False,
            )
            if not report.exists():
                raise KatoError(
                    f"{node.name}: the checks did not run: "
                    f"{(done.stderr or done.stdout).strip()[-300:]}"
                )
            results += parse_report(report.read_text(), node.name)
    if not results:
        raise UsageError("no role checks to run on the chosen nodes")
    return results
