"""kato installed like any Python tool: the built wheel in a fresh venv outside the checkout,
with no KATO_ROLES, runs `kato status` and `kato data export` against the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration
CHECKOUT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KATO_ROLES", "PYTHONPATH")}
    env.pop("KATO_CLUSTER", None)
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only the wheel built from this checkout (and its dependencies)."""
    work = tmp_path_factory.mktemp("wheel")
    assert not work.is_relative_to(CHECKOUT)
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--quiet", "-w", str(work / "dist"), str(CHECKOUT)], work)
    (wheel,) = (work / "dist").glob("kato-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kato/_roles/router/role.yaml" in names
    assert "kato/_roles/postgresql/component/bin/data-dump" in names
    _run([sys.executable, "-m", "venv", str(work / "venv")], work)
    _run([str(work / "venv/bin/pip"), "install", "--quiet", str(wheel)], work)
    return work


def test_the_installed_wheel_runs_status_and_export_without_a_checkout(
    cluster: Cluster, installed: Path
) -> None:
    kato = str(installed / "venv/bin/kato")
    where = _run(
        [str(installed / "venv/bin/python"), "-c", "import kato.roles as r; "
         "print(r.__file__); print(r.bundled_directory())"],
        installed,
    ).stdout.split()  # fmt: skip
    assert all(Path(p).is_relative_to(installed / "venv") for p in where), where
    cluster_file = str(cluster.home / "cluster.yaml")
    status = json.loads(
        _run([kato, "--cluster", cluster_file, "status", "--json"], installed).stdout
    )
    roles = {r["role"]: r["health"] for n in status["nodes"] for r in n["roles"]}
    assert roles and set(roles.values()) == {"ok"}, roles
    dest = installed / "archives"
    dest.mkdir()
    _run([kato, "--cluster", cluster_file, "data", "export", str(dest)], installed)
    (archive,) = dest.glob("*.tar.zst")
    _run([kato, "--cluster", cluster_file, "data", "verify", str(archive)], installed)
