"""Smaller faults found on the way, each on real nodes: known_hosts as a link or missing,
`kato status` naming a refused host key, an unreadable patch record, `kato data import -`
naming `-`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import KATO, Cluster, cluster_copy, kato

pytestmark = pytest.mark.integration


def test_a_symlinked_known_hosts_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    real = (cluster.home / "known_hosts").read_text()
    path = cluster_copy(cluster, tmp_path, known_hosts=real)
    (tmp_path / "linked").symlink_to(tmp_path / "known_hosts")
    path.write_text(
        path.read_text().replace(str(tmp_path / "known_hosts"), str(tmp_path / "linked"))
    )
    done = kato("--cluster", str(path), "run", "--node", "node1", "--", "true", check=False)
    assert done.returncode == 5, done.stderr
    assert "is a symbolic link" in done.stdout + done.stderr


def test_a_missing_known_hosts_hints_at_trust(cluster: Cluster, tmp_path: Path) -> None:
    path = cluster_copy(cluster, tmp_path, known_hosts="")
    (tmp_path / "known_hosts").unlink()
    done = kato("--cluster", str(path), "lock", "status", check=False)
    assert done.returncode == 5, done.stderr
    assert "there is no known_hosts file at" in done.stderr
    assert "hint: record the node's key with `kato node trust --node node1`" in done.stderr


def test_status_says_host_key_refused_not_unreachable(cluster: Cluster, tmp_path: Path) -> None:
    path = cluster_copy(cluster, tmp_path, known_hosts="")
    done = kato("--cluster", str(path), "status", check=False)
    assert "lock: unknown (the core node's host key was refused)" in done.stdout, done.stdout
    assert "unreachable" not in done.stdout
    version = kato("--cluster", str(path), "version", check=False)
    assert "host key refused: node1" in version.stderr and "no answer" not in version.stderr


def test_an_unreadable_patch_record_is_a_clear_message(cluster: Cluster) -> None:
    record = "/var/lib/kato/patches/router-nosniff.json"
    cluster.ssh("node2", f"mkdir -p /var/lib/kato/patches && printf '{{broken' > {record}")
    try:
        done = kato("--cluster", str(cluster.home / "cluster.yaml"), "patch", "status",
                    check=False)  # fmt: skip
    finally:
        cluster.ssh("node2", f"rm -f {record}")
    text = done.stdout + done.stderr
    assert f"{record} is not a readable patch record" in text, text
    assert "JSONDecodeError" not in text and "Traceback" not in text


def test_a_refused_import_from_stdin_names_the_stream(cluster: Cluster) -> None:
    done = subprocess.run(
        (*KATO, "--cluster", str(cluster.home / "cluster.yaml"), "data", "import", "-"),
        input=b"not an archive at all" * 100, capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 6, done.stderr
    assert "error: -: " in done.stderr.decode(), done.stderr
    assert b".spool" not in done.stderr


def test_an_export_that_waited_for_the_lock_is_stamped_when_it_read(
    cluster: Cluster, tmp_path: Path
) -> None:
    import calendar
    import time

    from tests.integration.test_core import _wait_for_lock

    config = cluster.home / "cluster.yaml"
    holder = subprocess.Popen(
        (*KATO, "--cluster", str(config), "run", "--node", "node2", "--", "sleep", "8"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_lock(config)
        asked = time.time()
        kato("--cluster", str(config), "data", "export", str(tmp_path), "--role", "redis",
             "--lock-wait", "60s")  # fmt: skip
    finally:
        holder.wait(timeout=60)
    (archive,) = tmp_path.iterdir()
    stamp = archive.name.removeprefix(f"{cluster.name}-").split(".")[0]
    stamped = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    assert stamped >= asked + 2, (archive.name, asked)  # after the wait, not when asked
