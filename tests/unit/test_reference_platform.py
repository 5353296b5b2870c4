"""The reference platform's components, run off-node from their built artifacts on loopback.

Each Python service is started from its unpacked artifact with --port/--data-dir overrides, so
these tests check what a node would run (including the VERSION file next to bin/).
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kato.release import load_release
from kato.roles import load_roles

REPO_ROOT = Path(__file__).resolve().parents[2]
RELEASES = "/var/lib/kato/releases/current"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str


def request(url: str, method: str = "GET", body: bytes | None = None) -> Reply:
    call = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(call, timeout=5) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return Reply(response.status, headers, response.read().decode())
    except urllib.error.HTTPError as exc:
        headers = {k.lower(): v for k, v in exc.headers.items()}
        return Reply(exc.code, headers, exc.read().decode())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unpack(release_repo: Path, role: str, version: str, dest: Path) -> Path:
    artifact = load_release(release_repo, version).roles[role]
    target = dest / version / role
    target.mkdir(parents=True)
    with tarfile.open(release_repo / artifact.path) as tar:
        tar.extractall(target, filter="data")
    return target


class Service:
    """One component program started on a free loopback port, stopped at the end."""

    def __init__(self, program: Path, data_dir: Path, *extra: str) -> None:
        self.port = free_port()
        argv = (sys.executable, str(program), "--bind", "127.0.0.1", "--port", str(self.port))
        self.process = subprocess.Popen(
            (*argv, "--data-dir", str(data_dir), *extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 15.0) -> Reply:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return request(f"{self.url}/healthz")
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise AssertionError(f"not healthy: {stderr}") from None
                time.sleep(0.1)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


def test_controller_serves_health_version_and_a_durable_registry(
    release_repo: Path, tmp_path: Path, services: list[Service]
) -> None:
    release_dir = unpack(release_repo, "controller", "1.1.0", tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    first = Service(release_dir / "bin/controller.py", data)
    services.append(first)
    health = first.wait_healthy()
    assert (health.status, health.body) == (200, "ok\n")
    assert health.headers["x-platform-version"] == "1.1.0"
    assert json.loads(request(f"{first.url}/version").body)["version"] == "1.1.0"
    posted = request(f"{first.url}/apps", "POST", json.dumps({"name": "blog"}).encode())
    assert posted.status == 201
    assert request(f"{first.url}/apps", "POST", b"{not json").status == 400
    first.stop()
    assert sorted(p.name for p in data.iterdir()) == ["state.json"]  # no temp file left
    second = Service(release_dir / "bin/controller.py", data)
    services.append(second)
    second.wait_healthy()
    registry = json.loads(request(f"{second.url}/apps").body)
    assert registry["updates"] == 1
    assert registry["apps"]["blog"]["instances"] == 1


def test_controller_refuses_a_missing_data_dir(release_repo: Path, tmp_path: Path) -> None:
    release_dir = unpack(release_repo, "controller", "1.0.0", tmp_path)
    done = subprocess.run(
        (sys.executable, str(release_dir / "bin/controller.py"), "--data-dir", "/nonexistent"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "/nonexistent does not exist" in done.stderr


def test_filesystem_serves_droplets_read_only(
    release_repo: Path, tmp_path: Path, services: list[Service]
) -> None:
    release_dir = unpack(release_repo, "filesystem", "1.0.0", tmp_path)
    droplets = tmp_path / "droplets"
    droplets.mkdir()
    (droplets / "blog.tgz").write_bytes(b"droplet bytes")
    (tmp_path / "secret").write_text("not for you")
    (droplets / "escape").symlink_to(tmp_path / "secret")
    server = Service(release_dir / "bin/fileserver.py", droplets)
    services.append(server)
    health = server.wait_healthy()
    assert (health.status, health.body) == (200, "ok\n")
    assert health.headers["x-platform-version"] == "1.0.0"
    assert request(f"{server.url}/blog.tgz").body == "droplet bytes"
    assert request(f"{server.url}/escape").status == 404
    assert request(f"{server.url}/blog.tgz", "PUT", b"x").status == 501
    assert (droplets / "blog.tgz").read_bytes() == b"droplet bytes"


def test_dea_runs_the_sample_app_and_stops_it(
    release_repo: Path, tmp_path: Path, services: list[Service]
) -> None:
    release_dir = unpack(release_repo, "dea", "1.1.0", tmp_path)
    containers = tmp_path / "containers"
    containers.mkdir()
    dea = Service(release_dir / "bin/dea.py", containers)
    services.append(dea)
    assert dea.wait_healthy().body == "ok\n"
    hello = request(f"{dea.url}/")
    assert hello.body == f"hello from {socket.gethostname()} (platform 1.1.0)\n"
    head = request(f"{dea.url}/", "HEAD")
    assert (head.status, head.body, head.headers["content-length"]) == (
        200,
        "",
        str(len(hello.body)),
    )
    instance = json.loads((containers / "hello-0/instance.json").read_text())
    assert (instance["port"], instance["version"]) == (dea.port, "1.1.0")
    assert dea.stop() == 0
    with pytest.raises(OSError):
        request(f"{dea.url}/healthz")  # the instance went with the dea


def test_router_nginx_config_is_valid(release_repo: Path, tmp_path: Path) -> None:
    if shutil.which("nginx") is None:
        if os.environ.get("CI"):
            pytest.fail(
                "CI must test the router's nginx.conf, but nginx is missing (scripts/setup)"
            )
        pytest.skip("needs nginx (apt-get install nginx-light; scripts/setup does)")
    release_dir = unpack(release_repo, "router", "1.1.0", tmp_path)
    upstreams = tmp_path / "router-upstreams.conf"
    upstreams.write_text("upstream apps { server 127.0.0.1:9000; }\n")
    config = release_dir / "nginx.conf"
    text = config.read_text()
    for node_path in ("/etc/kato/router-upstreams.conf", "/run/kato-router/nginx.pid"):
        assert node_path in text
    text = text.replace("/etc/kato/router-upstreams.conf", str(upstreams))
    config.write_text(text.replace("/run/kato-router/nginx.pid", str(tmp_path / "nginx.pid")))
    done = subprocess.run(
        ("nginx", "-t", "-q", "-c", str(config), "-e", str(tmp_path / "error.log")),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


def test_units_start_the_current_release_and_are_enabled_for_boot() -> None:
    roles = load_roles(REPO_ROOT / "roles")
    for name, role in roles.items():
        for unit in role.units:
            path = REPO_ROOT / "roles" / name / "component/units" / unit
            parser = configparser.ConfigParser(strict=False, interpolation=None)
            parser.read_string(path.read_text())
            assert parser["Install"]["WantedBy"] == "multi-user.target"
            exec_start = parser["Service"]["ExecStart"]
            ours = f"{RELEASES}/{name}/" in exec_start
            assert ours or name == "postgresql", (unit, exec_start)  # postgres: Debian's config
            assert "/releases/1." not in exec_start  # never a fixed version


def test_install_hooks_are_executable_posix_shell(release_repo: Path, tmp_path: Path) -> None:
    release = load_release(release_repo, "1.0.0")
    for role in release.roles:
        hook = unpack(release_repo, role, "1.0.0", tmp_path) / "hooks/install"
        assert hook.stat().st_mode & 0o777 == 0o755
        assert hook.read_text().startswith("#!/bin/sh\n")
        assert subprocess.run(("sh", "-n", str(hook)), timeout=30).returncode == 0
        usage = subprocess.run((str(hook),), capture_output=True, text=True, timeout=30)
        assert usage.returncode != 0 and "usage: install VERSION RELEASE_DIR" in usage.stderr


def test_no_placeholder_is_left_in_any_artifact(release_repo: Path) -> None:
    for version in ("1.0.0", "1.1.0"):
        for artifact in load_release(release_repo, version).roles.values():
            with tarfile.open(release_repo / artifact.path) as tar:
                for member in tar:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        assert b"@VERSION@" not in handle.read(), (artifact.path, member.name)
