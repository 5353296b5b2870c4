"""`down` leaves nothing behind, even after a killed `up`; bad cases change nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import KATO, Cluster, kato, missing_requirement, sandbox_name

pytestmark = pytest.mark.integration
HOME = Path(os.environ.get("KATO_SANDBOX_HOME", "/var/lib/kato-sandbox"))


@pytest.fixture(autouse=True)
def _needs_sandbox_support() -> None:
    reason = missing_requirement()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"integration tests must run in CI, but the sandbox {reason}")
        pytest.skip(f"sandbox {reason}")


def leftovers(name: str) -> list[str]:
    """Everything of sandbox `name` still on this machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [a.decode(errors="replace") for a in args]
        if any(a.startswith(f"--machine={name}-") for a in text) or (
            "kato.sandbox.supervisor" in text and name in text
        ):
            found.append(f"process {entry.name}: {' '.join(text)}")
    home = HOME / name
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.split()[4].startswith(str(home)):
            found.append(f"mount {line.split()[4]}")
    loops = json.loads(
        subprocess.run(("losetup", "--json", "--list"), capture_output=True, text=True).stdout
        or '{"loopdevices": []}'
    )
    found += [
        f"loop {d['name']}"
        for d in loops.get("loopdevices", [])
        if str(d.get("back-file", "")).startswith(str(home))
    ]
    links = json.loads(subprocess.run(("ip", "-j", "link"), capture_output=True, text=True).stdout)
    found += [
        f"link {link['ifname']}"
        for link in links
        if link["ifname"] == f"kbr-{name}"[:15] or link["ifname"].startswith(f"v{name}-")
    ]
    netns = Path("/run/netns")
    if netns.exists():
        found += [f"netns {n.name}" for n in netns.iterdir() if n.name.startswith(f"kato-{name}-")]
    found += [f"cgroup {c}" for c in Path("/sys/fs/cgroup").glob(f"**/kato-sandbox/{name}-*")]
    if home.exists():
        found.append(f"state {home}")
    return found


def test_down_removes_everything_and_twice_is_fine() -> None:
    kato("sandbox", "up", "--name", sandbox_name("down"), "--nodes", "1", "--bare")
    kato(
        "sandbox",
        "disk",
        "node1",
        "--fs",
        "btrfs",
        "--size",
        "128M",
        "--name",
        sandbox_name("down"),
    )
    assert leftovers(sandbox_name("down")), "the leftover check sees nothing of a live sandbox"
    kato("sandbox", "down", "--name", sandbox_name("down"))
    assert leftovers(sandbox_name("down")) == []
    again = kato("sandbox", "down", "--name", sandbox_name("down"))
    assert "nothing to remove" in again.stderr


def test_down_after_a_killed_up_removes_what_it_made() -> None:
    up = subprocess.Popen(
        (*KATO, "sandbox", "up", "--name", sandbox_name("kill"), "--nodes", "2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        # kill it once the first node's systemd-nspawn is running: the middle of `up`
        while time.monotonic() < deadline and not any(
            line.startswith("process") for line in leftovers(sandbox_name("kill"))
        ):
            time.sleep(0.02)
        up.send_signal(signal.SIGKILL)
        up.wait()
        assert leftovers(sandbox_name("kill")), "up was killed before it made anything"
        status = kato("sandbox", "up", "--name", sandbox_name("kill"), check=False)
        assert status.returncode != 0 or "already up" in status.stderr
    finally:
        kato("sandbox", "down", "--name", sandbox_name("kill"))
    assert leftovers(sandbox_name("kill")) == []


def test_up_as_a_normal_user_is_refused_and_makes_nothing() -> None:
    done = kato(
        "sandbox",
        "up",
        "--name",
        sandbox_name("user"),
        user="65534",
        check=False,
        env={"HOME": "/tmp"},
    )
    assert done.returncode == 7, done.stderr
    assert "needs root" in done.stderr
    assert leftovers(sandbox_name("user")) == []


def test_up_without_systemd_nspawn_names_the_package(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ip", "debootstrap", "ssh-keygen", "losetup", "mkfs.btrfs", "mkfs.ext4"):
        found = subprocess.run(("which", tool), capture_output=True, text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    done = kato(
        "sandbox", "up", "--name", sandbox_name("tool"), check=False, env={"PATH": str(bin_dir)}
    )
    assert done.returncode == 7, done.stderr
    assert "systemd-nspawn is not installed" in done.stderr
    assert "apt-get install -y systemd-container" in done.stderr
    assert leftovers(sandbox_name("tool")) == []


def test_up_on_a_taken_address_range_is_refused(cluster: Cluster) -> None:
    taken = str(cluster.status["subnet"])
    done = kato("sandbox", "up", "--name", sandbox_name("taken"), "--subnet", taken, check=False)
    assert done.returncode == 7, done.stderr
    assert f"address range {taken} is already in use" in done.stderr
    assert leftovers(sandbox_name("taken")) == []


def test_an_image_that_cannot_be_built_leaves_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    done = kato(
        "sandbox",
        "up",
        "--name",
        sandbox_name("img"),
        "--mirror",
        "http://127.0.0.1:9/debian",
        check=False,
        env={"KATO_SANDBOX_CACHE": str(cache)},
    )
    assert done.returncode == 1, done.stderr
    assert "could not build the node image" in done.stderr
    assert leftovers(sandbox_name("img")) == []
    images = cache / "images"
    assert [p.name for p in images.iterdir() if not p.name.endswith((".log", ".lock"))] == []
