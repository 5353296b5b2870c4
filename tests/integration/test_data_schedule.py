"""Scheduled exports on real nodes: kato on the core node, crontab, cron runs, retention, lock."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import KATO, Cluster, kato

pytestmark = pytest.mark.integration

FOREIGN = "# kept as it is\n17  *\t* * *   /bin/true   # not kato's\n"
CRON_DEST = "/var/backups/kato-cron-test"
METRICS = "/var/lib/node_exporter/textfile_collector"


def on(cluster: Cluster, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return kato("--cluster", str(cluster.home / "cluster.yaml"), *args, check=check)


def archives(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tar" in p.name)


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"kato_data_export_{name}{{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in:\n{text}")


@pytest.fixture
def crontab(cluster: Cluster) -> Iterator[str]:
    """node1's root crontab holds a foreign line during the test and is restored after."""
    before = cluster.ssh("node1", "crontab -l")
    cluster.ssh("node1", f"printf %s {shlex.quote(FOREIGN)} | crontab -")
    try:
        yield FOREIGN
    finally:
        if before.returncode == 0:
            cluster.ssh("node1", f"printf %s {shlex.quote(before.stdout)} | crontab -")
        else:
            cluster.ssh("node1", "crontab -r")


def test_kato_runs_on_the_core_node(cluster: Cluster) -> None:
    done = cluster.ssh("node1", "kato status", timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"cluster {cluster.name}" in done.stdout
    assert "node3" in done.stdout
    host = cluster.host("node1")
    for name in ("cluster.yaml", "id_ed25519", "known_hosts"):
        assert host.file(f"/etc/kato/{name}").mode == 0o600
    assert host.file("/usr/local/bin/kato").mode == 0o755
    assert host.service("cron").is_running


def test_the_crontab_entry_is_right_and_only_it_is_removed(cluster: Cluster, crontab: str) -> None:
    dry = on(cluster, "data", "schedule", "add", "--cron", "0 3 * * *", "--dest", "/srv/b k",
             "--keep", "2", "--role", "postgresql", "--dry-run")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert cluster.ssh("node1", "crontab -l").stdout == crontab
    added = on(cluster, "data", "schedule", "add", "--cron", "0 3 * * *", "--dest", "/srv/b k",
               "--keep", "2", "--role", "postgresql", "--json")  # fmt: skip
    assert added.returncode == 0, added.stderr
    change = json.loads(added.stdout)
    entry = change["entry"]["id"]
    line = change["line"]
    assert line == dry.stdout
    assert line == (
        "0 3 * * * /usr/local/bin/kato --cluster /etc/kato/cluster.yaml data schedule run"
        " --dest '/srv/b k' --keep 2 --role postgresql --compress zstd --lock-wait 1800"
        f" --metrics {METRICS}/kato_data_export_{entry}.prom"
        f" >> /var/log/kato/export-{entry}.log 2>&1 # kato-data-export:{entry}\n"
    )
    assert cluster.ssh("node1", "crontab -l").stdout == crontab + line
    listed = json.loads(on(cluster, "data", "schedule", "list", "--json", check=True).stdout)
    assert [(e["id"], e["cron"], e["dest"], e["keep"]) for e in listed] == [
        (entry, "0 3 * * *", "/srv/b k", 2)
    ]
    unknown = on(cluster, "data", "schedule", "remove", "nope")
    assert unknown.returncode == 2 and entry in unknown.stderr
    on(cluster, "data", "schedule", "remove", entry, check=True)
    assert cluster.ssh("node1", "crontab -l").stdout == crontab


def test_a_bad_schedule_is_refused_and_changes_nothing(cluster: Cluster, crontab: str) -> None:
    done = on(cluster, "data", "schedule", "add", "--cron", "61 * * * *", "--dest", "/srv/b")
    assert done.returncode == 2 and "not a valid cron schedule" in done.stderr
    assert cluster.ssh("node1", "crontab -l").stdout == crontab


def test_cron_on_the_core_node_runs_an_export_that_verifies(cluster: Cluster, crontab: str) -> None:
    assert cluster.ssh("node1", "systemctl is-active cron").stdout.strip() == "active"
    added = on(cluster, "data", "schedule", "add", "--cron", "* * * * *", "--dest", CRON_DEST,
               "--keep", "1", "--json")  # fmt: skip
    assert added.returncode == 0, added.stderr
    entry = json.loads(added.stdout)["entry"]["id"]
    try:
        found = _wait_for_archive(cluster, CRON_DEST, timeout=150)
    finally:
        on(cluster, "data", "schedule", "remove", entry, check=True)
        _wait_no_run(cluster)
    log = cluster.ssh("node1", f"cat /var/log/kato/export-{entry}.log").stdout
    verified = cluster.ssh("node1", f"kato data verify {CRON_DEST}/{found}", timeout=120)
    prom = cluster.ssh("node1", f"cat {METRICS}/kato_data_export_{entry}.prom").stdout
    cluster.ssh("node1", f"rm -rf {CRON_DEST} {METRICS}/kato_data_export_{entry}.prom "
                f"/var/log/kato/export-{entry}.log")  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr + log
    assert found.startswith(f"{cluster.name}-") and found.endswith(".tar.zst")
    assert "kato data schedule run: export to" in log
    assert metric(prom, "last_run_success") == 1
    assert metric(prom, "last_archive_bytes") > 0
    assert time.time() - metric(prom, "last_success_timestamp_seconds") < 300


def _wait_for_archive(cluster: Cluster, directory: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = cluster.ssh("node1", f"ls {directory} 2>/dev/null").stdout.split()
        done = [n for n in listed if n.endswith(".tar.zst") and not n.startswith(".")]
        if done:
            return done[0]
        time.sleep(3)
    log = cluster.ssh("node1", "tail -n 30 /var/log/kato/export-*.log").stdout
    raise AssertionError(f"no archive in {directory} on node1 after {timeout}s; log:\n{log}")


def _wait_no_run(cluster: Cluster, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.ssh("node1", "pgrep -f 'data schedule run'").returncode != 0:
            return
        time.sleep(1)
    raise AssertionError("a scheduled run on node1 did not end")


def _run(cluster: Cluster, dest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return on(cluster, "data", "schedule", "run", "--dest", str(dest),
              "--metrics", str(dest / "m.prom"), "--role", "redis", *args)  # fmt: skip


def _corrupt_copy(source: Path, name: str) -> Path:
    target = source.with_name(name)
    shutil.copyfile(source, target)
    with target.open("r+b") as handle:
        handle.truncate(target.stat().st_size // 2)
    return target


def test_retention_keeps_n_and_never_deletes_the_newest_verified_or_a_corrupt_one(
    cluster: Cluster, tmp_path: Path
) -> None:
    made = []
    for _ in range(3):
        done = _run(cluster, tmp_path)
        assert done.returncode == 0, done.stderr
        made.append(archives(tmp_path)[-1])
        time.sleep(1.1)  # archive names have a resolution of one second
    assert len(set(made)) == 3
    prefix = f"{cluster.name}-"
    old_bad = _corrupt_copy(tmp_path / made[0], f"{prefix}20000101T000000Z.tar.zst").name
    new_bad = _corrupt_copy(tmp_path / made[0], f"{prefix}29990101T000000Z.tar.zst").name
    (tmp_path / "notes.txt").write_text("not an archive")
    done = _run(cluster, tmp_path, "--keep", "2")
    assert done.returncode == 0, done.stderr
    newest = sorted(set(archives(tmp_path)) - set(made) - {old_bad, new_bad})
    assert len(newest) == 1
    assert archives(tmp_path) == sorted([old_bad, made[2], newest[0], new_bad])
    assert f"{new_bad} fails verification" in done.stderr
    assert (tmp_path / "notes.txt").exists()
    assert metric((tmp_path / "m.prom").read_text(), "invalid_archives") == 2
    listing = on(cluster, "data", "backups", str(tmp_path), "--json")
    assert listing.returncode == 6
    status = {b["name"]: b["verified"] for b in json.loads(listing.stdout)["backups"]}
    assert status == {old_bad: False, made[2]: True, newest[0]: True, new_bad: False}


def test_a_run_while_the_lock_is_held_fails_with_4_or_waits(
    cluster: Cluster, tmp_path: Path
) -> None:
    path = cluster.home / "cluster.yaml"
    holder = subprocess.Popen(
        (*KATO, "--cluster", str(path), "run", "--node", "node1", "--", "sleep", "8"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_lock(cluster)
        refused = _run(cluster, tmp_path)
        assert refused.returncode == 4, refused.stderr
        assert "locked by" in refused.stderr
        assert archives(tmp_path) == []
        prom = (tmp_path / "m.prom").read_text()
        assert metric(prom, "last_run_success") == 0
        assert metric(prom, "last_success_timestamp_seconds") == 0
        waited = _run(cluster, tmp_path, "--lock-wait", "60s")
        assert waited.returncode == 0, waited.stderr
    finally:
        holder.wait(timeout=60)
    assert len(archives(tmp_path)) == 1
    assert metric((tmp_path / "m.prom").read_text(), "last_run_success") == 1


def _wait_for_lock(cluster: Cluster, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = on(cluster, "lock", "status", "--json", check=True)
        if json.loads(done.stdout)["record"]:
            return
        time.sleep(0.2)
    raise AssertionError("the lock was never taken")


def test_on_the_core_node_cron_runs_the_kato_and_cluster_file_used(cluster: Cluster) -> None:
    setup = "mkdir -p /root/bin && cp /usr/local/bin/kato /root/bin/kato && "
    setup += "cp /etc/kato/cluster.yaml /root/other.yaml"
    assert cluster.ssh("node1", setup).returncode == 0
    try:
        done = cluster.ssh(
            "node1",
            "/root/bin/kato --cluster /root/other.yaml data schedule add --cron '0 4 * * *' "
            "--dest /var/tmp/elsewhere --dry-run",
            timeout=60,
        )
    finally:
        cluster.ssh("node1", "rm -rf /root/bin /root/other.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "0 4 * * * /root/bin/kato --cluster /root/other.yaml data schedule run --dest "
    )
    here = on(cluster, "data", "schedule", "add", "--cron", "0 4 * * *", "--dest", "/var/tmp/e",
              "--kato", "/opt/kato/bin/kato", "--dry-run")  # fmt: skip
    assert here.returncode == 7, here.stderr  # no such kato on the core node: refused
    assert "/opt/kato/bin/kato" in here.stderr


def test_dry_runs_and_json_of_remove_and_run(
    cluster: Cluster, crontab: str, tmp_path: Path
) -> None:
    added = on(cluster, "data", "schedule", "add", "--cron", "0 5 * * *", "--dest", "/srv/j",
               "--json", check=True)  # fmt: skip
    entry = json.loads(added.stdout)["entry"]["id"]
    dry = on(cluster, "data", "schedule", "remove", entry, "--dry-run", "--json", check=True)
    assert json.loads(dry.stdout) == {"removed": json.loads(added.stdout)["entry"], "dry_run": True}
    assert entry in cluster.ssh("node1", "crontab -l").stdout
    on(cluster, "data", "schedule", "remove", entry, check=True)
    planned = on(cluster, "data", "schedule", "run", "--dest", str(tmp_path), "--keep", "1",
                 "--dry-run", "--json", check=True)  # fmt: skip
    document = json.loads(planned.stdout)
    assert document["keep"] == ["(the new archive)"] and document["delete"] == []
    assert {r["source"]["role"] for r in document["export"]["plan"]} >= {"postgresql", "redis"}
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a metric here
