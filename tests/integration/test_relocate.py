"""kato relocate on a sandbox node of its own (relocations are not undone): refusals that change
nothing, the faults (a full target, a crashed node, kato killed with the roles stopped), then
every data dir moved with its data checked through the roles' own clients, quotas enforced,
and all of it still true after a reboot."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import KATO, Cluster, kato, missing_requirement, sandbox_name

pytestmark = pytest.mark.integration
NAME = sandbox_name("reloc")
PSQL = "cd / && runuser -u postgres -- psql -X -q -At -h /run/postgresql"
DROPLETS = "/var/lib/kato/data/droplets"
ODD = ("with space", 'quote\'d "both"', "ünïcødé ✓", "-leading-dash", "new\nline")
FILL = f"""
set -e
{PSQL} -c "CREATE TABLE items AS
  SELECT g AS id, 'item ' || g AS name FROM generate_series(1, 5000) g"
redis-cli -h 127.0.0.1 set greeting 'hello world' >/dev/null
redis-cli -h 127.0.0.1 rpush queue a b c >/dev/null
curl -fsS -X POST -d '{{"name": "shop", "instances": 3}}' http://127.0.0.1:8181/apps >/dev/null
mkdir -p {DROPLETS}/app-1/sub
head -c 3000000 /dev/urandom > {DROPLETS}/app-1/sub/bits.bin
ln {DROPLETS}/app-1/sub/bits.bin {DROPLETS}/app-1/hard
ln -s sub/bits.bin {DROPLETS}/app-1/current
truncate -s 200M {DROPLETS}/app-1/sparse && printf tail >> {DROPLETS}/app-1/sparse
python3 -c "import os; os.setxattr('{DROPLETS}/app-1/sub/bits.bin', 'user.kato', b'xattr value')"
chown -R kato:kato {DROPLETS}/app-1
"""
# Where the droplets are now, read from the node's record (absent: where the role declares).
DROPLETS_NOW = f"""
import json, os
path = "/var/lib/kato/datadirs.yaml"
record = json.load(open(path)) if os.path.exists(path) else {{"data_dirs": {{}}}}
moved = record["data_dirs"].get("filesystem", {{}}).get("droplets")
print(moved["path"] if moved else "{DROPLETS}")
"""
# What the roles' clients say, and every droplet file's name, kind, mode, owner, size, hash.
SNAPSHOT = f"""
DROPLETS_NOW='{DROPLETS_NOW}'
{PSQL} -c "SELECT count(*), sum(id), md5(string_agg(name, ',' ORDER BY id)) FROM items"
redis-cli -h 127.0.0.1 get greeting; redis-cli -h 127.0.0.1 lrange queue 0 -1
curl -fsS http://127.0.0.1:8181/apps
cd "$(python3 -c "$DROPLETS_NOW")"
find . -type d -printf '%p %y %m %U:%G\\n' -o -printf '%p %y %m %U:%G %s %n %l\\n' \\
  | LC_ALL=C sort
find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
python3 -c "import os; print(os.getxattr('app-1/sub/bits.bin', 'user.kato'))"
du -B1 app-1/sparse | cut -f1
curl -fsS http://127.0.0.1:8182/app-1/current | sha256sum
"""
# The node's own files a dry run or a refusal must not change (the data dirs' content moves
# as the roles run, so they are compared through SNAPSHOT instead; the node agent's cache of
# kato's programs, by content hash, may be filled by any command).
FINGERPRINT = """
find /etc /var/lib/kato /mnt -xdev -path /var/lib/kato/data -prune -o -path /etc/ssh -prune \
  -o -path /var/lib/kato/agent -prune \
  -o -printf '%p %y %m %U:%G %s %T@ %l\\n' 2>/dev/null | LC_ALL=C sort | sha256sum
cat /var/lib/kato/datadirs.yaml 2>/dev/null || true
"""


@pytest.fixture(scope="module")
def node() -> Iterator[Cluster]:
    """A one-node sandbox with the platform, filled with known data."""
    reason = missing_requirement()
    if reason:
        pytest.skip(f"sandbox {reason}")
    kato("sandbox", "down", "--name", NAME)
    up = kato("sandbox", "up", "--name", NAME, "--nodes", "1", "--json")
    status = json.loads(up.stdout)
    cluster = Cluster(NAME, Path(status["cluster_file"]).parent, status)
    try:
        shell(cluster, FILL)
        for index, name in enumerate(ODD):
            cluster.host("node1").run_expect([0], "printf %%s %s > %s", str(index),
                                             f"{DROPLETS}/app-1/{name}")  # fmt: skip
        yield cluster
    finally:
        kato("sandbox", "down", "--name", NAME)


def on(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return kato("--cluster", str(cluster.home / "cluster.yaml"), *args, check=check)


def shell(cluster: Cluster, script: str) -> str:
    done = cluster.ssh("node1", script, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def disk(cluster: Cluster, fs: str, size: str, at: str) -> None:
    kato("sandbox", "disk", "node1", "--name", cluster.name, "--fs", fs, "--size", size, "--at", at)


def fingerprint(cluster: Cluster) -> str:
    return hashlib.sha256(shell(cluster, FINGERPRINT).encode()).hexdigest()


def wait_healthy(cluster: Cluster) -> None:
    deadline = time.monotonic() + 120
    while on(cluster, "status", check=False).returncode != 0:
        assert time.monotonic() < deadline, on(cluster, "status", check=False).stdout
        time.sleep(1)


def record(cluster: Cluster) -> dict[str, object]:
    text = shell(cluster, "cat /var/lib/kato/datadirs.yaml 2>/dev/null || echo '{}'")
    found: dict[str, object] = json.loads(text)
    return found


def where(cluster: Cluster, role: str, name: str) -> str:
    found = json.loads(on(cluster, "relocate", "status", "--json").stdout)
    return str(next(d["path"] for d in found["dirs"] if (d["role"], d["name"]) == (role, name)))


def test_status_shows_each_data_dir_where_its_role_declares_it(node: Cluster) -> None:
    found = json.loads(on(node, "relocate", "status", "--json").stdout)
    rows = {(d["role"], d["name"]): d for d in found["dirs"]}
    assert set(rows) == {("postgresql", "services"), ("redis", "services"),
                         ("controller", "controller"), ("filesystem", "droplets"),
                         ("dea", "containers")}  # fmt: skip
    assert rows[("filesystem", "droplets")]["path"] == DROPLETS
    assert rows[("filesystem", "droplets")]["used"] > 3_000_000
    assert rows[("dea", "containers")]["quota"].startswith("unsupported: overlay cannot carry")


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (
            ("droplet", "/mnt/x"),
            2,
            "the data dirs are: audit, containers, controller, droplets, services",
        ),
        (("droplets", "mnt/x"), 2, "is not an absolute path"),
        (("droplets", "/mnt/x/"), 2, "must be a normalised path"),
        (("droplets", f"{DROPLETS}/inside"), 7, "is inside the droplets data dir of filesystem"),
        (("services", "/var/lib/kato/data"), 7, "is inside /var/lib/kato/data"),
        (("droplets", "/proc/kato"), 7, "is on proc (mounted at /proc), which does not keep"),
        (("droplets", "/var/lib/kato/releases"), 7, "already holds data (1.0.0, current)"),
    ],
)
def test_bad_locations_are_refused_and_change_nothing(
    node: Cluster, args: tuple[str, str], code: int, says: str
) -> None:
    before, data = fingerprint(node), shell(node, SNAPSHOT)
    done = on(node, "relocate", *args, check=False)
    assert done.returncode == code, done.stderr
    assert says in done.stderr
    assert (fingerprint(node), shell(node, SNAPSHOT)) == (before, data)


def test_dry_run_prints_the_plan_and_changes_nothing(node: Cluster) -> None:
    disk(node, "btrfs", "1G", "/mnt/dry")
    before, data = fingerprint(node), shell(node, SNAPSHOT)
    done = on(node, "relocate", "droplets", "/mnt/dry/droplets", "--dry-run")
    assert "would move filesystem droplets" in done.stdout
    assert "/mnt/dry/droplets/filesystem" in done.stdout
    assert (fingerprint(node), shell(node, SNAPSHOT)) == (before, data)


@pytest.mark.parametrize(
    ("fs", "size", "why"),
    [
        (
            "ext4",
            "256M",
            'CONFIG_QFMT_V2 is not set), so quotaon would fail with "Quota format '
            'not supported in kernel"',
        ),
        ("xfs", "320M", "this kernel's xfs has no quota support (CONFIG_XFS_QUOTA is not set)"),
    ],
)
def test_containers_where_this_kernel_cannot_enforce_quotas_are_refused(
    node: Cluster, fs: str, size: str, why: str
) -> None:
    disk(node, fs, size, f"/mnt/{fs}")
    before = fingerprint(node)
    done = on(node, "relocate", "containers", f"/mnt/{fs}/containers", check=False)
    assert done.returncode == 7, done.stderr
    assert why in done.stderr and "--no-quota" in done.stderr
    assert fingerprint(node) == before
    status = json.loads(on(node, "relocate", "status", "--json").stdout)
    assert all(d["moving"] is None for d in status["dirs"])


def relocate_in_background(cluster: Cluster, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        (*KATO, "--cluster", str(cluster.home / "cluster.yaml"), "relocate", *args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_on_node(cluster: Cluster, condition: str, proc: subprocess.Popen[str]) -> None:
    """Until the shell condition holds on the node (while kato still runs), 60 s at most."""
    done = cluster.ssh(
        "node1",
        f"for i in $(seq 3000); do if {condition}; then exit 0; fi; sleep 0.02; done; exit 1",
        timeout=90,
    )
    assert done.returncode == 0, f"never true: {condition} (kato: {proc.poll()})"


def test_a_target_disk_full_mid_copy_keeps_the_old_location_and_a_rerun_converges(
    node: Cluster,
) -> None:
    disk(node, "btrfs", "1500M", "/mnt/small")
    shell(node, f"head -c 150M /dev/urandom > {DROPLETS}/big.bin && chown kato: {DROPLETS}/big.bin")
    data = shell(node, SNAPSHOT)
    # fills the disk the moment kato makes the new location, before or while rsync writes
    filler = subprocess.Popen(
        ("ssh", "-F", str(node.ssh_config), "node1",
         "while [ ! -d /mnt/small/d ]; do sleep 0.01; done; "
         "fallocate -l $(( $(stat -f -c '%a * %S' /mnt/small) - 2**20 )) /mnt/small/hog"),
    )  # fmt: skip
    try:
        done = on(node, "relocate", "droplets", "/mnt/small/d", check=False)
    finally:
        filler.wait(timeout=60)
    assert done.returncode == 1, done.stderr
    assert "No space left on device (28)" in done.stderr, done.stderr
    assert "the roles kept running on their old location" in done.stderr
    wait_healthy(node)
    assert where(node, "filesystem", "droplets") == DROPLETS
    assert shell(node, SNAPSHOT) == data
    shell(node, "rm -f /mnt/small/hog && btrfs filesystem sync /mnt/small")
    again = on(node, "relocate", "droplets", "/mnt/small/d")
    assert "/mnt/small/d/filesystem: " in again.stdout and "entries verified" in again.stdout
    assert where(node, "filesystem", "droplets") == "/mnt/small/d/filesystem"
    assert shell(node, SNAPSHOT) == data


def test_a_node_crashed_mid_copy_comes_back_on_the_old_location_and_a_rerun_converges(
    node: Cluster,
) -> None:
    disk(node, "btrfs", "3G", "/mnt/ebs")
    source = where(node, "filesystem", "droplets")
    shell(node, f"head -c 900M /dev/urandom > {source}/huge.bin && chown kato: {source}/huge.bin")
    data = shell(node, SNAPSHOT)
    proc = relocate_in_background(node, "droplets", "/mnt/ebs/d")
    wait_on_node(node, "[ $(du -sm /mnt/ebs/d 2>/dev/null | cut -f1) -gt 50 ]", proc)
    # the node crashes and boots again (kato, the core node's lock and journal wait for it)
    kato("sandbox", "crash", "node1", "--name", node.name)
    kato("sandbox", "start", "node1", "--name", node.name)
    _, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 5, stderr
    assert "the roles kept running on their old location" in stderr
    assert "node1" in stderr
    wait_healthy(node)
    assert where(node, "filesystem", "droplets") == source
    assert shell(node, SNAPSHOT) == data
    again = on(node, "relocate", "droplets", "/mnt/ebs/d")
    assert "entries verified" in again.stdout
    assert where(node, "filesystem", "droplets") == "/mnt/ebs/d/filesystem"
    assert shell(node, SNAPSHOT) == data
    shell(node, "rm -f /mnt/ebs/d/filesystem/huge.bin")


@pytest.fixture
def slow_stop(node: Cluster) -> Iterator[None]:
    """The controller takes 5 s more to stop: a window to kill kato in."""
    unit = "/etc/systemd/system/kato-controller.service.d/49-test-slow-stop.conf"
    shell(
        node,
        f"mkdir -p {unit.rsplit('/', 1)[0]} && "
        f"printf '[Service]\\nExecStopPost=/bin/sleep 5\\n' > {unit} && systemctl daemon-reload",
    )
    yield
    shell(node, f"rm -f {unit} && systemctl daemon-reload")


def test_kato_killed_between_stop_and_start_loses_nothing_and_a_rerun_converges(
    node: Cluster, slow_stop: None
) -> None:
    apps = shell(node, "curl -fsS http://127.0.0.1:8181/apps")
    proc = relocate_in_background(node, "controller", "/mnt/ebs/c")
    wait_on_node(node, "[ $(systemctl is-active kato-controller) = deactivating ]", proc)
    proc.kill()
    proc.wait(timeout=30)
    assert where(node, "controller", "controller") == "/var/lib/kato/data/controller"
    state = json.loads(on(node, "lock", "status", "--json").stdout)
    assert "relocate controller" in state["record"]["command"]
    on(node, "lock", "break", state["record"]["id"])
    again = on(node, "relocate", "controller", "/mnt/ebs/c")
    assert "entries verified" in again.stdout
    wait_healthy(node)
    assert where(node, "controller", "controller") == "/mnt/ebs/c/controller"
    assert shell(node, "curl -fsS http://127.0.0.1:8181/apps") == apps


def test_services_and_containers_move_with_their_data_and_the_apps_quota_is_enforced(
    node: Cluster,
) -> None:
    data = shell(node, SNAPSHOT)
    done = on(node, "relocate", "services", "/mnt/ebs/s")
    assert "/mnt/ebs/s/postgresql: " in done.stdout and "/mnt/ebs/s/redis: " in done.stdout
    moved = on(node, "relocate", "containers", "/mnt/ebs/k", "--app-limit", "10M")
    assert "/mnt/ebs/k/dea: " in moved.stdout
    wait_healthy(node)
    assert shell(node, SNAPSHOT) == data
    assert where(node, "postgresql", "services") == "/mnt/ebs/s/postgresql"
    # the roles write to the new place: a new row and key land on /mnt/ebs
    shell(node, f"{PSQL} -c 'INSERT INTO items VALUES (5001, $$after$$)'")
    shell(node, "redis-cli -h 127.0.0.1 set after yes >/dev/null; redis-cli -h 127.0.0.1 save")
    assert "dump.rdb" in shell(node, "ls /mnt/ebs/s/redis")
    assert_quota_enforced(node)


def assert_quota_enforced(node: Cluster) -> None:
    app = shell(node, "ls /mnt/ebs/k/dea").split()[0]
    found = node.ssh("node1", f"cd / && runuser -u kato -- dd if=/dev/zero "
                     f"of=/mnt/ebs/k/dea/{app}/fill bs=1M count=20 conv=fsync")  # fmt: skip
    shell(node, f"rm -f /mnt/ebs/k/dea/{app}/fill")
    assert found.returncode != 0
    assert "Disk quota exceeded" in found.stderr
    assert "btrfs" in shell(node, "btrfs qgroup show -re /mnt/ebs | grep -c 10.00MiB && echo btrfs")


def test_after_a_reboot_the_roles_use_the_new_locations_and_the_quota_holds(
    node: Cluster,
) -> None:
    data = shell(node, SNAPSHOT)
    kato("sandbox", "reboot", "node1", "--name", node.name)
    wait_healthy(node)
    assert shell(node, SNAPSHOT) == data
    assert shell(node, f"{PSQL} -c 'SELECT name FROM items WHERE id = 5001'") == "after\n"
    assert shell(node, "redis-cli -h 127.0.0.1 get after") == "yes\n"
    mounts = shell(node, "cat /proc/$(systemctl show -p MainPID --value kato-dea)/mountinfo")
    assert "/k/dea /var/lib/kato/data/containers " in mounts
    assert_quota_enforced(node)


def test_cleanup_removes_the_old_copies_and_nothing_in_use(node: Cluster) -> None:
    data = shell(node, SNAPSHOT)
    plan = on(node, "relocate", "cleanup", "--dry-run")
    assert "would remove filesystem droplets old copy /mnt/small/d/filesystem" in plan.stdout
    on(node, "relocate", "cleanup")
    assert shell(node, f"ls -A {DROPLETS}") == ""  # emptied: the mount point of the new one
    assert shell(node, "ls -A /mnt/small/d") == ""
    assert all(not d["old_copies"] for d in json.loads(
        on(node, "relocate", "status", "--json").stdout)["dirs"])  # fmt: skip
    wait_healthy(node)
    assert shell(node, SNAPSHOT) == data


def test_node_check_checks_each_data_dir_where_it_lives_now(node: Cluster) -> None:
    """After the cleanup the declared paths are empty mount points on the node: every role's
    check looks where kato says each data dir lives now ($KATO_CHECK_DATA_DIRS), and passes."""
    done = on(node, "node", "check", "--json", check=False)
    checks = json.loads(done.stdout)
    assert done.returncode == 0 and all(c["passed"] for c in checks), checks
    ran = {(c["role"], c["name"]) for c in checks}
    for role, check in (
        ("postgresql", "test_data_dir_belongs_to_postgres_and_is_private"),
        ("redis", "test_data_dir_belongs_to_redis_and_is_private"),
        ("dea", "test_containers_dir_belongs_to_kato_and_is_private"),
        ("filesystem", "test_droplets_dir_belongs_to_kato_and_is_private"),
    ):
        assert (role, check) in ran, (role, check)
