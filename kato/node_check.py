"""`kato node check`: run each role's read-only testinfra checks against the nodes carrying it.

The checks live beside the roles (roles/<role>/test_<role>.py). kato runs them with pytest and
pytest-testinfra through its own transport (kato.node_check_backend: kato's known_hosts, the
OpenSSH config, jump hosts and sudo as everywhere else), and reads the verdicts back from
pytest's JUnit XML report.
"""

from __future__ import annotations

import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from kato.config import Cluster
from kato.connect import select_nodes
from kato.errors import KatoError, UsageError
from kato.status import roles_directory
from kato.transport import local
from kato.transport.fanout import fan_out

CHECK_TIMEOUT = 600.0


@dataclass(frozen=True)
class Check:
    node: str
    role: str
    name: str
    passed: bool
    message: str


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


def check(
    cluster: Cluster, names: list[str] | None = None, roles: list[str] | None = None
) -> list[Check]:
    """Every chosen node's checks, ssh.parallel (--parallel) nodes at once; a node whose checks
    could not run is one failed check, not the end of the others."""
    directory = roles_directory()
    chosen = {
        n.name: [
            str(directory / r / f"test_{r}.py")
            for r in n.roles
            if (directory / r / f"test_{r}.py").exists() and (not roles or r in roles)
        ]
        for n in select_nodes(cluster, names, roles)
    }
    chosen = {node: files for node, files in chosen.items() if files}
    if not chosen:
        raise UsageError("no role checks to run on the chosen nodes")
    with tempfile.TemporaryDirectory(prefix="kato-check-") as tmp:
        done = fan_out(
            list(chosen),
            lambda node: _run_checks(cluster, directory, node, chosen[node], Path(tmp)),
            cluster.ssh.parallel,
        )
    results = [c for node in chosen if node in done.succeeded for c in done.succeeded[node]]
    results += [Check(f.node, "-", f.phase, False, f.message) for f in done.failed.values()]
    return results


def _run_checks(
    cluster: Cluster, directory: Path, node: str, files: list[str], tmp: Path
) -> list[Check]:
    report = tmp / f"{node}.xml"
    done = local.run(
        (
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "kato.node_check_backend",
            "--rootdir",
            str(directory),
            f"--hosts=kato://{node}",
            f"--junitxml={report}",
            *files,
        ),
        timeout=CHECK_TIMEOUT,
        check=False,
        env={"KATO_CLUSTER": str(Path(cluster.path).absolute())},
    )
    if not report.exists():
        raise KatoError(f"the checks did not run: {(done.stderr or done.stdout).strip()[-300:]}")
    return parse_report(report.read_text(), node)
