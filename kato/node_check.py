"""`kato node check`: run each role's read-only testinfra checks against the nodes carrying it.

The checks live beside the roles (roles/<role>/test_<role>.py). kato runs them with pytest and
pytest-testinfra through its own transport (kato.node_check_backend: kato's known_hosts, the
OpenSSH config, jump hosts and sudo as everywhere else), and reads the verdicts back from
pytest's JUnit XML report.
"""

from __future__ import annotations

import json
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from kato import datadirs, role_definitions
from kato.config import Cluster
from kato.connect import connections, select_nodes
from kato.datadirs import Locations
from kato.errors import KatoError, UsageError
from kato.role_definitions import NodeRoles
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
    could not run is one failed check, not the end of the others. Each node is checked as the
    release it runs defines its roles: a role that release does not define is a failed check,
    and the checks get the node's data dirs (its release's, where they live now)."""
    directory = roles_directory()
    chosen = {
        n.name: [r for r in n.roles if _checks(directory, r) and (not roles or r in roles)]
        for n in select_nodes(cluster, names, roles)
    }
    chosen = {node: carried for node, carried in chosen.items() if carried}
    if not chosen:
        raise UsageError("no role checks to run on the chosen nodes")
    with tempfile.TemporaryDirectory(prefix="kato-check-") as tmp, connections(cluster) as conns:

        def on(node: str) -> list[Check]:
            t = conns.get(node)
            mine = role_definitions.of_node(cluster, t, node)
            plan = plan_node(directory, mine, datadirs.locations(t), chosen[node])
            ran = _run_checks(cluster, directory, node, plan, Path(tmp)) if plan.files else []
            return plan.undefined + ran

        done = fan_out(list(chosen), on, cluster.ssh.parallel)
    results = [c for node in chosen if node in done.succeeded for c in done.succeeded[node]]
    results += [Check(f.node, "-", f.phase, False, f.message) for f in done.failed.values()]
    return results


@dataclass(frozen=True)
class NodePlan:
    """One node's checks: the test files to run, the data dirs they see, and a failed check
    for each role the node carries that its release does not define."""

    files: list[str]
    data_dirs: dict[str, dict[str, str]]  # role -> name -> where it lives now
    undefined: list[Check]


def plan_node(directory: Path, mine: NodeRoles, where: Locations, carried: list[str]) -> NodePlan:
    """Pure: which of the node's role checks run, with its release's data dirs."""
    defined = [r for r in carried if r in mine.roles]
    undefined = [
        Check(mine.node, r, "defined_by_its_release", False, f"{mine.source} defines no {r} role")
        for r in carried
        if r not in mine.roles
    ]
    data = {r: where.of(mine.roles[r]) for r in defined}
    return NodePlan([str(_checks(directory, r)) for r in defined], data, undefined)


def _checks(directory: Path, role: str) -> Path | None:
    found = directory / role / f"test_{role}.py"
    return found if found.exists() else None


def _run_checks(
    cluster: Cluster, directory: Path, node: str, plan: NodePlan, tmp: Path
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
            *plan.files,
        ),
        timeout=CHECK_TIMEOUT,
        check=False,
        env={
            "KATO_CLUSTER": str(Path(cluster.path).absolute()),
            datadirs.CHECK_ENV: json.dumps(plan.data_dirs),  # the checks' `data_dirs` fixture
        },
    )
    if not report.exists():
        raise KatoError(f"the checks did not run: {(done.stderr or done.stdout).strip()[-300:]}")
    return parse_report(report.read_text(), node)
