"""Off-site copies through rclone, against an SFTP remote: the real sshd of a node of its own
(a 1-node sandbox next to the test cluster). Upload checked, listed, read back, imported from;
faults: the remote unreachable or full, a corrupted copy."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Cluster, kato, sandbox_name

pytestmark = pytest.mark.integration
STORE = "/srv/backups"
GREETING = "redis-cli -h 127.0.0.1 get greeting"


class Remote:
    """The SFTP node and the cluster file that names an rclone config reaching it."""

    def __init__(self, name: str, home: Path, cluster_file: Path) -> None:
        self.name, self.home, self.cluster_file = name, home, cluster_file

    def ssh(self, script: str) -> str:
        done = subprocess.run(("ssh", "-F", str(self.home / "ssh_config"), "node1", script),
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def kato(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return kato("--cluster", str(self.cluster_file), *args, check=check, timeout=600)


@pytest.fixture(scope="module")
def remote(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    if shutil.which("rclone") is None:
        pytest.fail("rclone is not installed: scripts/setup installs it")
    name = sandbox_name("offsite")
    kato("sandbox", "down", "--name", name)
    up = json.loads(kato("sandbox", "up", "--name", name, "--nodes", "1", "--bare",
                         "--json").stdout)  # fmt: skip
    home = Path(up["cluster_file"]).parent
    address = up["nodes"][0]["address"]
    work = tmp_path_factory.mktemp("offsite")
    config = work / "rclone.conf"
    config.write_text(
        f"[away]\ntype = sftp\nhost = {address}\nuser = root\n"
        f"key_file = {home / 'id_ed25519'}\nknown_hosts_file = {home / 'known_hosts'}\n"
    )
    document = yaml.safe_load((cluster.home / "cluster.yaml").read_text())
    document["offsite"] = {"rclone_config": str(config)}
    cluster_file = work / "cluster.yaml"
    cluster_file.write_text(yaml.safe_dump(document))
    try:
        found = Remote(name, home, cluster_file)
        found.ssh(f"mkdir -p {STORE}")
        yield found
    finally:
        kato("sandbox", "down", "--name", name)


def remote_files(remote: Remote, where: str = STORE) -> list[str]:
    return sorted(remote.ssh(f"ls -A {where}").split())


def test_an_export_sent_off_site_is_checked_listed_read_back_and_imported_from(
    cluster: Cluster, remote: Remote, tmp_path: Path
) -> None:
    cluster.ssh("node1", f"{GREETING.replace('get', 'set')} 'from off-site'")
    done = remote.kato("data", "export", str(tmp_path), "--role", "redis", "--to",
                       f"away:{STORE}")  # fmt: skip
    (archive,) = tmp_path.iterdir()
    assert f"uploaded to away:{STORE}/{archive.name}" in done.stderr + done.stdout
    assert "checked: size and md5" in done.stderr + done.stdout
    assert archive.name in remote_files(remote)
    assert (
        remote.ssh(f"sha256sum < {STORE}/{archive.name}").split()[0]
        == (
            subprocess.run(
                ("sha256sum", str(archive)), capture_output=True, text=True
            ).stdout.split()[0]
        )
    )
    listed = json.loads(remote.kato("data", "backups", f"away:{STORE}", "--json").stdout)
    assert [b["name"] for b in listed["backups"]][:1] == [archive.name]
    assert listed["backups"][0]["verified"] is None  # listed, not read back
    verified = json.loads(
        remote.kato("data", "backups", f"away:{STORE}", "--verify", "--json").stdout
    )
    assert verified["backups"][0]["verified"] is True

    cluster.ssh("node1", f"{GREETING.replace('get', 'set')} 'changed since'")
    remote.kato("data", "import", f"away:{STORE}/{archive.name}", "--role", "redis")
    assert cluster.ssh("node1", GREETING).stdout.strip() == "from off-site"
    remote.kato("data", "cleanup")


def test_a_corrupted_off_site_copy_is_found_by_backups_verify(
    remote: Remote, tmp_path: Path
) -> None:
    remote.kato("data", "export", str(tmp_path), "--role", "redis", "--to", f"away:{STORE}")
    (archive,) = tmp_path.iterdir()
    remote.ssh(f"printf X | dd of={STORE}/{archive.name} bs=1 seek=263300 conv=notrunc")
    checked = remote.kato("data", "backups", f"away:{STORE}", "--verify", "--json", check=False)
    assert checked.returncode == 6, checked.stderr
    mine = next(b for b in json.loads(checked.stdout)["backups"] if b["name"] == archive.name)
    assert mine["verified"] is False and mine["status"] != "ok"
    remote.ssh(f"rm -f {STORE}/{archive.name}")


def test_an_unreachable_remote_fails_the_scheduled_run_and_keeps_the_local_archive(
    remote: Remote, tmp_path: Path
) -> None:
    metric = tmp_path / "export.prom"
    kato("sandbox", "partition", "node1", "--name", remote.name)
    try:
        done = remote.kato("data", "schedule", "run", "--dest", str(tmp_path / "local"),
                           "--role", "redis", "--offsite", f"away:{STORE}", "--metrics",
                           str(metric), check=False)  # fmt: skip
    finally:
        kato("sandbox", "heal", "node1", "--name", remote.name)
    assert done.returncode == 1, done.stderr
    assert "couldn't connect SSH" in done.stderr and "the archive stays at" in done.stderr
    (archive,) = (tmp_path / "local").iterdir()
    kato("data", "verify", str(archive))
    (success,) = [s for s in metric.read_text().splitlines() if "_last_run_success{" in s]
    assert success.endswith(" 0"), success


def test_a_full_remote_fails_the_upload_with_rclone_s_reason_and_leaves_no_partial_copy(
    remote: Remote, tmp_path: Path, cluster: Cluster
) -> None:
    kato("sandbox", "disk", "node1", "--name", remote.name, "--fs", "ext4", "--size", "16M",
         "--at", "/srv/small")  # fmt: skip
    cluster.ssh("node1", "head -c 40000000 /dev/urandom > /var/lib/kato/data/droplets/big.bin")
    try:
        done = remote.kato("data", "export", str(tmp_path), "--role", "filesystem", "--to",
                           "away:/srv/small", check=False)  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "rclone copyto failed" in done.stderr and "the archive stays at" in done.stderr
        (archive,) = tmp_path.iterdir()
        kato("data", "verify", str(archive))
        assert remote_files(remote, "/srv/small") == ["lost+found"]
    finally:
        cluster.ssh("node1", "rm -f /var/lib/kato/data/droplets/big.bin")
        kato("sandbox", "disk", "node1", "--name", remote.name, "--at", "/srv/small", "--remove")


def test_retention_off_site_keeps_the_newest_copies_and_other_clusters_archives(
    remote: Remote, tmp_path: Path
) -> None:
    remote.ssh(f"rm -f {STORE}/*; touch {STORE}/other-20200101T000000Z.tar.zst")
    for run in range(3):
        if run:
            time.sleep(1.1)  # archive names are stamped to the second
        remote.kato("data", "schedule", "run", "--dest", str(tmp_path), "--role", "redis",
                    "--keep", "2", "--offsite", f"away:{STORE}", "--metrics",
                    str(tmp_path / "m.prom"))  # fmt: skip
    local = sorted(p.name for p in tmp_path.glob("*.tar.zst"))
    assert len(local) == 2
    assert remote_files(remote) == sorted([*local, "other-20200101T000000Z.tar.zst"])


def test_retention_off_site_never_counts_a_corrupted_copy_and_keeps_it_until_outgrown(
    remote: Remote, tmp_path: Path
) -> None:
    remote.ssh(f"rm -f {STORE}/*")

    def scheduled_run() -> subprocess.CompletedProcess[str]:
        time.sleep(1.1)  # archive names are stamped to the second
        return remote.kato("data", "schedule", "run", "--dest", str(tmp_path), "--role",
                           "redis", "--keep", "2", "--offsite", f"away:{STORE}")  # fmt: skip

    scheduled_run()
    scheduled_run()
    older, newer = remote_files(remote)
    remote.ssh(f"printf X | dd of={STORE}/{newer} bs=1 seek=263300 conv=notrunc")
    done = scheduled_run()
    # the corrupted copy does not count: the older good one is kept with the new one
    assert f"{newer} does not verify" in done.stderr
    (third,) = set(remote_files(remote)) - {older, newer}
    assert remote_files(remote) == sorted([older, newer, third])
    scheduled_run()
    # two newer copies verify: both older ones go, the corrupted one included
    assert older not in remote_files(remote) and newer not in remote_files(remote)
    assert third in remote_files(remote) and len(remote_files(remote)) == 2


def test_a_remote_the_rclone_config_lacks_is_refused_before_anything_is_exported(
    remote: Remote, tmp_path: Path
) -> None:
    done = remote.kato("data", "export", str(tmp_path), "--role", "redis", "--to",
                       f"awya:{STORE}", check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "no remote named 'awya'" in done.stderr and "its remotes: away" in done.stderr
    assert list(tmp_path.iterdir()) == []
    assert "not locked" in remote.kato("lock", "status").stdout
