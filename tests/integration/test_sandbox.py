"""The sandbox brings up real nodes, and every fault verb produces its observable."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.integration.conftest import Cluster, kato

pytestmark = pytest.mark.integration
NODES = ("node1", "node2", "node3")


def test_three_nodes_run_systemd_and_sshd_with_their_own_identity(cluster: Cluster) -> None:
    host_keys = set()
    for name in NODES:
        host = cluster.host(name)
        assert host.run("systemctl is-system-running --wait").stdout.strip() == "running"
        assert host.file("/proc/1/comm").content_string.strip() == "systemd"
        assert host.socket("tcp://0.0.0.0:22").is_listening
        assert host.check_output("hostname") == name
        assert host.check_output("id -un") == "root"  # the admin key logged in
        host_keys.add(host.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1])
    assert len(host_keys) == len(NODES), "nodes share an SSH host key"


def test_known_hosts_holds_each_nodes_own_key(cluster: Cluster) -> None:
    lines = (cluster.home / "known_hosts").read_text().splitlines()
    recorded = {line.split()[0]: line.split()[2] for line in lines}
    for name in NODES:
        on_node = cluster.host(name).file("/etc/ssh/ssh_host_ed25519_key.pub").content_string
        assert recorded[cluster.address(name)] == on_node.split()[1]
    # and OpenSSH, told to trust nothing else, accepts them
    for name in NODES:
        done = cluster.ssh(name, "true")
        assert done.returncode == 0, done.stderr


def test_cluster_file_names_every_node_and_the_core(cluster: Cluster) -> None:
    import yaml

    document = yaml.safe_load((cluster.home / "cluster.yaml").read_text())
    assert document["core"] == "node1"
    assert [n["name"] for n in document["nodes"]] == list(NODES)
    assert document["ssh"]["known_hosts"] == str(cluster.home / "known_hosts")
    assert "postgresql" in document["nodes"][0]["roles"]


def test_status_json_reports_every_node_running(cluster: Cluster) -> None:
    status = json.loads(kato("sandbox", "status", "--name", cluster.name, "--json").stdout)
    assert [(n["name"], n["state"]) for n in status["nodes"]] == [(n, "running") for n in NODES]


def test_second_up_reports_it_and_changes_nothing(cluster: Cluster) -> None:
    before = {name: cluster.boot_id(name) for name in NODES}
    again = kato("sandbox", "up", "--name", cluster.name)
    assert "already up" in again.stderr
    assert {name: cluster.boot_id(name) for name in NODES} == before


def _connect(address: str, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection((address, 22), timeout=timeout)


def _banner(address: str, timeout: float = 2.0) -> bytes:
    with _connect(address, timeout) as conn:
        conn.settimeout(timeout)
        return conn.recv(64)


def test_crash_refuses_connections_and_start_brings_the_node_back(cluster: Cluster) -> None:
    address, before = cluster.address("node3"), cluster.boot_id("node3")
    kato("sandbox", "crash", "node3", "--name", cluster.name)
    try:
        with pytest.raises(ConnectionRefusedError):
            _connect(address)
        status = json.loads(kato("sandbox", "status", "--name", cluster.name, "--json").stdout)
        assert status["nodes"][2]["state"] == "crashed"
    finally:
        kato("sandbox", "start", "node3", "--name", cluster.name)
    assert _banner(address).startswith(b"SSH-2.0-")
    assert cluster.boot_id("node3") != before


def test_freeze_times_out_the_banner_and_thaw_restores_it(cluster: Cluster) -> None:
    address = cluster.address("node2")
    kato("sandbox", "freeze", "node2", "--name", cluster.name)
    try:
        with _connect(address) as conn:  # the kernel still accepts the connection ...
            conn.settimeout(2.0)
            with pytest.raises(TimeoutError):
                conn.recv(64)  # ... but sshd is stopped and never sends its banner
    finally:
        kato("sandbox", "thaw", "node2", "--name", cluster.name)
    assert _banner(address).startswith(b"SSH-2.0-")
    assert cluster.ssh("node2", "true").returncode == 0


def test_partition_times_out_connecting_and_heal_restores_it(cluster: Cluster) -> None:
    address = cluster.address("node2")
    kato("sandbox", "partition", "node2", "--name", cluster.name)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            _connect(address, timeout=2.0)
        assert time.monotonic() - started >= 1.9  # silently dropped, not refused
        # the rest of the cluster is unaffected
        assert _banner(cluster.address("node3")).startswith(b"SSH-2.0-")
    finally:
        kato("sandbox", "heal", "node2", "--name", cluster.name)
    assert _banner(address).startswith(b"SSH-2.0-")


def test_reboot_changes_the_boot_id_and_the_node_answers_again(cluster: Cluster) -> None:
    before = cluster.boot_id("node3")
    kato("sandbox", "reboot", "node3", "--name", cluster.name)
    assert cluster.boot_id("node3") != before
    assert cluster.host("node3").check_output("hostname") == "node3"


def test_a_reboot_from_inside_the_node_brings_it_back(cluster: Cluster) -> None:
    before = cluster.boot_id("node3")
    cluster.ssh("node3", "systemctl reboot")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = cluster.ssh("node3", "cat /proc/sys/kernel/random/boot_id", timeout=10)
        if done.returncode == 0 and done.stdout.strip() != before:
            break
        time.sleep(0.5)
    else:
        pytest.fail("node3 did not come back from `systemctl reboot`")


def test_btrfs_disk_is_mounted_enforces_quota_and_survives_reboot(cluster: Cluster) -> None:
    kato(
        "sandbox",
        "disk",
        "node2",
        "--fs",
        "btrfs",
        "--size",
        "256M",
        "--at",
        "/mnt/ebs",
        "--name",
        cluster.name,
    )
    try:
        host = cluster.host("node2")
        assert host.mount_point("/mnt/ebs").filesystem == "btrfs"
        host.check_output(
            "btrfs quota enable /mnt/ebs && btrfs subvolume create /mnt/ebs/q"
            " && btrfs qgroup limit 10M /mnt/ebs/q"
        )
        write = host.run("dd if=/dev/zero of=/mnt/ebs/q/f bs=1M count=20 conv=fsync")
        assert write.rc != 0 and "quota exceeded" in write.stderr.lower()
        kato("sandbox", "reboot", "node2", "--name", cluster.name)
        host = cluster.host("node2")
        assert host.mount_point("/mnt/ebs").filesystem == "btrfs"
        assert host.file("/mnt/ebs/q/f").exists
    finally:
        kato("sandbox", "disk", "node2", "--at", "/mnt/ebs", "--remove", "--name", cluster.name)
    assert not cluster.host("node2").mount_point("/mnt/ebs").exists


def test_ext4_disk_is_mounted(cluster: Cluster) -> None:
    kato(
        "sandbox",
        "disk",
        "node3",
        "--fs",
        "ext4",
        "--size",
        "64M",
        "--at",
        "/mnt/data",
        "--name",
        cluster.name,
    )
    try:
        assert cluster.host("node3").mount_point("/mnt/data").filesystem == "ext4"
    finally:
        kato("sandbox", "disk", "node3", "--at", "/mnt/data", "--remove", "--name", cluster.name)
