"""On real nodes: `--parallel` bounds the nodes in flight; a node cut off mid-command is named
within a time the ssh settings give; a long quiet command outlives a firewall's idle timeout
because of ssh.keepalive (and is cut without it)."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import KATO, Cluster, kato

pytestmark = pytest.mark.integration

STAMPED = "date +%s.%N; sleep 1; date +%s.%N"  # the node's own clock before and after


def spans(cluster: Cluster, *options: str) -> list[tuple[float, float]]:
    """When each node ran STAMPED, by its own clock (the sandbox's nodes share the host's)."""
    done = kato("--cluster", str(cluster.home / "cluster.yaml"), "run", *options, "--json",
                "--", "sh", "-c", STAMPED)  # fmt: skip
    results = json.loads(done.stdout)["results"]
    assert len(results) == 3, results
    pairs = [tuple(map(float, r["stdout"].split())) for r in results.values()]
    return sorted((a, b) for a, b in pairs)


def most_in_flight(found: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in found] + [(b, -1) for _, b in found])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_parallel_one_runs_one_node_at_a_time(cluster: Cluster) -> None:
    assert most_in_flight(spans(cluster, "--parallel", "1")) == 1
    assert most_in_flight(spans(cluster, "--parallel", "3")) == 3  # the observation can see it


class IdleCuttingFirewall:
    """A relay to a node's sshd that drops a connection after `idle` seconds without a byte
    either way, as a stateful firewall or NAT does (with a much longer timeout)."""

    def __init__(self, target: tuple[str, int], idle: float) -> None:
        self.target = target
        self.idle = idle
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                inside, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(inside,), daemon=True).start()

    def _relay(self, inside: socket.socket) -> None:
        outside = socket.create_connection(self.target, timeout=10)
        heard = time.monotonic()
        peer = {inside: outside, outside: inside}
        try:
            while not self.closing:
                ready, _, _ = select.select(list(peer), [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
                    heard = time.monotonic()
                if time.monotonic() - heard > self.idle:
                    self.cut.set()
                    return
        except OSError:
            return
        finally:
            inside.close()
            outside.close()

    def close(self) -> None:
        self.closing = True
        self.listener.close()


@pytest.fixture
def firewall(cluster: Cluster) -> Iterator[IdleCuttingFirewall]:
    wall = IdleCuttingFirewall((cluster.address("node3"), 22), idle=3)
    yield wall
    wall.close()


def behind(cluster: Cluster, wall: IdleCuttingFirewall, directory: Path, **ssh: object) -> Path:
    """The sandbox's cluster file with node3 reached through the firewall (its host key
    recorded under the relay's address too)."""
    document = yaml.safe_load((cluster.home / "cluster.yaml").read_text())
    address = cluster.address("node3")
    lines = Path(document["ssh"]["known_hosts"]).read_text().splitlines()
    mine = [line.split(None, 1)[1] for line in lines if line.split(None, 1)[0] == address]
    assert mine, f"no plain known_hosts line for {address}"
    known = directory / "known_hosts"
    known.write_text("".join(f"{line}\n" for line in lines) + "".join(
        f"[127.0.0.1]:{wall.port} {key}\n" for key in mine))  # fmt: skip
    known.chmod(0o600)
    for node in document["nodes"]:
        if node["name"] == "node3":
            node.update(address="127.0.0.1", port=wall.port)
    document["ssh"].update(known_hosts=str(known), command_timeout=60, **ssh)
    path = directory / "cluster.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def quiet_run(config: Path, seconds: int) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = kato("--cluster", str(config), "run", "--node", "node3", "--", "sleep", str(seconds),
                check=False, timeout=120)  # fmt: skip
    return done, time.monotonic() - started


def test_keepalive_carries_a_quiet_command_past_a_firewalls_idle_timeout(
    cluster: Cluster, firewall: IdleCuttingFirewall, tmp_path: Path
) -> None:
    # kato's own sign-of-life probes come only every idle_timeout/4 (10 s here): the
    # keepalive every second is what the firewall sees.
    kept = behind(cluster, firewall, tmp_path, keepalive=1, idle_timeout=40)
    done, _ = quiet_run(kept, 10)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not firewall.cut.is_set()


def test_without_keepalive_the_firewall_cuts_it_and_kato_says_so_at_once(
    cluster: Cluster, firewall: IdleCuttingFirewall, tmp_path: Path
) -> None:
    bare = behind(cluster, firewall, tmp_path, keepalive=0, idle_timeout=40)
    done, waited = quiet_run(bare, 30)
    assert done.returncode == 5, done.stdout + done.stderr
    assert firewall.cut.is_set()
    assert "node3" in done.stdout + done.stderr
    assert waited < 20, f"the cut connection was noticed after {waited:.0f}s"


def test_a_node_cut_off_mid_command_is_named_within_the_idle_timeout(cluster: Cluster) -> None:
    """Noticed within idle_timeout, plus a probe interval (idle_timeout/4) and the 1 s poll;
    then the run ends (the lock released, its end journaled): far below command_timeout."""
    idle = 4.0
    bound = idle + idle / 4 + 1 + 8  # 8 s to end the run on a loaded machine
    pid_file = "/run/ka-liveness.pid"
    proc = subprocess.Popen(
        (*KATO, "--cluster", str(cluster.home / "cluster.yaml"), "run", "--node", "node3",
         "--", "sh", "-c", f"echo $$ > {pid_file}; exec sleep 300"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "KATO_IDLE_TIMEOUT": f"{idle:g}"},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while cluster.ssh("node3", f"test -s {pid_file}").returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, "the command never started"
        time.sleep(0.2)
    kato("sandbox", "partition", "node3", "--name", cluster.name)
    cut = time.monotonic()
    try:
        said = "".join(proc.communicate(timeout=60))  # the failure table is on stdout
    finally:
        kato("sandbox", "heal", "node3", "--name", cluster.name)
    waited = time.monotonic() - cut
    assert proc.returncode == 5, said
    assert f"node3 sent nothing for {idle:g} s" in said, said
    assert idle - 1 <= waited <= bound, f"named after {waited:.1f}s (bound {bound:g}s)"
    deadline = time.monotonic() + 60
    while (back := cluster.ssh("node3", f"kill $(cat {pid_file}); rm {pid_file}")).returncode:
        assert time.monotonic() < deadline, back.stderr
        time.sleep(0.5)
