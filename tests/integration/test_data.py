"""kato data export / verify / import / cleanup on the sandbox, checked with the services'
own clients (psql, redis-cli, the controller's API) and file hashes."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import KATO, Cluster, kato

pytestmark = pytest.mark.integration
PSQL = "cd / && runuser -u postgres -- psql -X -q -At -h /run/postgresql"
DROPLETS = "/var/lib/kato/data/droplets"
ODD_NAMES = ("with space", 'quote\'d "both"', "ünïcødé ✓", "-leading-dash", "--", "new\nline")
FILL = f"""
set -e
{PSQL} -c "CREATE ROLE shopkeeper LOGIN PASSWORD 'pw'"
{PSQL} -c "CREATE DATABASE shop OWNER shopkeeper"
{PSQL} -d shop -c "CREATE TABLE items (id int PRIMARY KEY, name text);
  INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5000) g;
  ALTER TABLE items OWNER TO shopkeeper"
redis-cli -h 127.0.0.1 set greeting 'hello world' >/dev/null
redis-cli -h 127.0.0.1 rpush queue a b c >/dev/null
redis-cli -h 127.0.0.1 hset user:1 name ada lang en >/dev/null
mkdir -p {DROPLETS}/app-1/sub
printf 'droplet' > {DROPLETS}/app-1/sub/bits.bin
chmod 0640 {DROPLETS}/app-1/sub/bits.bin
chown 1234:2345 {DROPLETS}/app-1/sub/bits.bin
ln -s sub/bits.bin {DROPLETS}/app-1/current
curl -fsS -X POST -d '{{"name": "shop", "instances": 3}}' http://127.0.0.1:8181/apps >/dev/null
"""
WIPE = f"""
set -e
{PSQL} -c "DROP DATABASE shop" -c "DROP ROLE shopkeeper"
redis-cli -h 127.0.0.1 flushall >/dev/null
rm -rf {DROPLETS}/app-1 {DROPLETS}/odd
"""
SNAPSHOT = f"""
{PSQL} -d shop -c "SELECT count(*), sum(id), md5(string_agg(name, ',' ORDER BY id)) FROM items"
{PSQL} -c "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'shopkeeper'"
{PSQL} -c "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop'"
redis-cli -h 127.0.0.1 get greeting; redis-cli -h 127.0.0.1 lrange queue 0 -1
redis-cli -h 127.0.0.1 hgetall user:1
cd {DROPLETS} && find . -printf '%p %y %m %U:%G %s %l\\n' | LC_ALL=C sort
cd {DROPLETS} && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
curl -fsS http://127.0.0.1:8181/apps
"""
# What must not change when an import is refused: every data dir's files, the databases.
UNCHANGED = f"""
cd /var/lib/kato/data && find . -path ./services/postgresql -prune -o -type d \\
  -printf '%p %y %m %U:%G\\n' -o -printf '%p %y %m %U:%G %s %T@ %l\\n' | LC_ALL=C sort
{PSQL} -c "SELECT datname FROM pg_database ORDER BY 1"
cd / && runuser -u postgres -- pg_dumpall -h /run/postgresql | sed '/restrict /d' | sha256sum
redis-cli -h 127.0.0.1 --no-raw debug digest
"""


def on(
    cluster: Cluster, *args: str, check: bool = True, **kw: object
) -> subprocess.CompletedProcess[str]:
    return kato("--cluster", str(cluster.home / "cluster.yaml"), *args, check=check, **kw)  # type: ignore[arg-type]


def shell(cluster: Cluster, node: str, script: str) -> str:
    done = cluster.ssh(node, script, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fill_odd_names(cluster: Cluster) -> None:
    host = cluster.host("node1")
    host.check_output(f"mkdir -p {DROPLETS}/odd")
    for index, name in enumerate(ODD_NAMES):
        path = f"{DROPLETS}/odd/{name}"
        # printf %s keeps every byte of the name; the shell quoting is testinfra's
        host.run_expect([0], "printf %%s %s > %s", str(index), path)


@pytest.fixture(scope="module")
def filled(cluster: Cluster) -> Iterator[str]:
    """The core node's data services and file roles filled with known data (wiped after)."""
    shell(cluster, "node1", FILL)
    fill_odd_names(cluster)
    yield shell(cluster, "node1", SNAPSHOT)
    cluster.ssh("node1", WIPE)


@pytest.fixture(scope="module")
def archive(cluster: Cluster, filled: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("archives")
    done = on(cluster, "data", "export", str(directory))
    assert "verified" in done.stderr
    (path,) = directory.iterdir()
    return path


def unchanged_state(cluster: Cluster) -> str:
    return hashlib.sha256(shell(cluster, "node1", UNCHANGED).encode()).hexdigest()


def test_export_names_the_archive_with_cluster_and_utc_time_mode_0600(
    cluster: Cluster, archive: Path
) -> None:
    assert archive.name.startswith(f"{cluster.name}-") and archive.name.endswith("Z.tar.zst")
    assert archive.stat().st_mode & 0o777 == 0o600
    assert not [p for p in archive.parent.iterdir() if p.name.startswith(".")]
    listing = subprocess.run(("tar", "-tf", str(archive)), capture_output=True, text=True)
    assert listing.stdout.splitlines() == [
        "MANIFEST.json",
        "data/node1/postgresql/services.dump",
        "data/node1/redis/services.dump",
        "data/node1/controller/controller.tar",
        "data/node1/filesystem/droplets.tar",
    ]


def test_verify_reads_the_manifest_and_every_member(cluster: Cluster, archive: Path) -> None:
    done = kato("data", "verify", str(archive), "--json")
    result = json.loads(done.stdout)
    manifest = result["manifest"]
    assert manifest["format"] == 2 and manifest["cluster"] == cluster.name
    assert manifest["platform_version"] == "1.0.0"
    by_role = {m["role"]: m for m in manifest["members"]}
    assert by_role["filesystem"]["owner"] and by_role["filesystem"]["mode"].startswith("0")
    assert result["members"] == 4 and result["entries"] > len(ODD_NAMES)


def test_deep_verify_loads_the_dumps_on_a_node(cluster: Cluster, archive: Path) -> None:
    done = on(cluster, "data", "verify", "--deep", str(archive))
    assert "dumps restore" in done.stderr
    leftovers = shell(cluster, "node1", "ls /tmp | grep -c '^kato-' || true").strip()
    assert leftovers == "0"


def test_round_trip_export_wipe_import_gives_everything_back(
    cluster: Cluster, filled: str, archive: Path
) -> None:
    shell(cluster, "node1", WIPE)
    assert cluster.ssh("node1", SNAPSHOT).stdout != filled
    done = on(cluster, "data", "import", str(archive))
    assert "kato data cleanup" in done.stderr
    assert shell(cluster, "node1", SNAPSHOT) == filled
    status = json.loads(on(cluster, "status", "--json").stdout)
    assert all(r["health"] == "ok" for n in status["nodes"] for r in n["roles"])
    # the previous data is kept until cleanup, then removed
    kept = on(cluster, "data", "cleanup", "--dry-run").stdout
    assert ".kato-previous-" in kept
    on(cluster, "data", "cleanup")
    assert ".kato-previous-" not in on(cluster, "data", "cleanup", "--dry-run").stdout


def test_export_to_stdout_and_import_from_stdin(
    cluster: Cluster, filled: str, tmp_path: Path
) -> None:
    config = str(cluster.home / "cluster.yaml")
    streamed = tmp_path / "streamed.tar.zst"
    with streamed.open("wb") as sink:
        subprocess.run((*KATO, "--cluster", config, "data", "export", "-", "--role", "redis"),
                       stdout=sink, check=True, timeout=300)  # fmt: skip
    kato("data", "verify", str(streamed))
    shell(cluster, "node1", "redis-cli -h 127.0.0.1 set greeting changed >/dev/null")
    with streamed.open("rb") as source:
        done = subprocess.run(
            (*KATO, "--cluster", config, "data", "import", "-"),
            stdin=source, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert shell(cluster, "node1", "redis-cli -h 127.0.0.1 get greeting").strip() == "hello world"
    on(cluster, "data", "cleanup")


def test_only_and_exclude_choose_the_roles(cluster: Cluster, tmp_path: Path) -> None:
    on(cluster, "data", "export", str(tmp_path / "a.tar"), "--role", "postgresql,filesystem",
       "--compress", "none")  # fmt: skip
    on(cluster, "data", "export", str(tmp_path / "b.tar.gz"), "--exclude", "redis",
       "--compress", "gzip")  # fmt: skip
    names = {
        p.name: json.loads(kato("data", "verify", str(p), "--json").stdout)["manifest"]
        for p in tmp_path.iterdir()
    }
    assert {m["role"] for m in names["a.tar"]["members"]} == {"postgresql", "filesystem"}
    assert {m["role"] for m in names["b.tar.gz"]["members"]} == {
        "postgresql", "controller", "filesystem"
    }  # fmt: skip
    bad = on(cluster, "data", "export", str(tmp_path), "--role", "nosuchrole", check=False)
    assert bad.returncode == 2 and "nosuchrole" in bad.stderr


def test_dry_runs_read_and_write_nothing(cluster: Cluster, archive: Path, tmp_path: Path) -> None:
    before = unchanged_state(cluster)
    plan = on(cluster, "data", "export", str(tmp_path), "--dry-run").stdout
    assert "/var/lib/kato/data/droplets" in plan and list(tmp_path.iterdir()) == []
    plan = on(cluster, "data", "import", str(archive), "--dry-run").stdout
    assert ".kato-previous-" in plan
    assert unchanged_state(cluster) == before


def test_an_existing_destination_file_is_never_overwritten(
    cluster: Cluster, tmp_path: Path
) -> None:
    target = tmp_path / "keep.tar.zst"
    target.write_bytes(b"precious")
    done = on(cluster, "data", "export", str(target), check=False)
    assert done.returncode == 2 and "never overwrites" in done.stderr
    assert target.read_bytes() == b"precious"


MODES = f"""
set -e
mkdir -p {DROPLETS}/modes/shared {DROPLETS}/modes/open
chown 1001:1002 {DROPLETS}/modes {DROPLETS}/modes/shared
chmod 2750 {DROPLETS}/modes
chmod 2775 {DROPLETS}/modes/shared
chmod 0755 {DROPLETS}/modes/open
printf secret > {DROPLETS}/modes/shared/key
chown 1001:1002 {DROPLETS}/modes/shared/key
chmod 0600 {DROPLETS}/modes/shared/key
chmod 2750 {DROPLETS}
"""
# Modes and owners the import must put back, changed on every level.
MESS = f"""
set -e
chown -R 0:0 {DROPLETS}/modes
chmod -R 0777 {DROPLETS}/modes
chmod 0755 {DROPLETS} /var/lib/kato/data/services/redis
"""
LIST_MODES = (
    f"cd {DROPLETS} && find . -printf '%p %m %U:%G\\n' | LC_ALL=C sort; "
    "stat -c '%n %a %U' /var/lib/kato/data/services/redis; ls -A /var/lib/kato/data/services/redis"
)


def test_modes_and_owners_round_trip_and_redis_keeps_no_stale_snapshot(
    cluster: Cluster, tmp_path: Path
) -> None:
    droplets = shell(cluster, "node1", f"stat -c '%a %u:%g' {DROPLETS}").split()
    shell(cluster, "node1", MODES)
    try:
        exported = shell(cluster, "node1", LIST_MODES)
        assert "./modes/shared 2775 1001:1002" in exported and exported.startswith(". 2750 ")
        on(cluster, "data", "export", str(tmp_path), "--role", "filesystem,redis")
        (path,) = tmp_path.iterdir()
        shell(cluster, "node1", MESS)
        assert shell(cluster, "node1", LIST_MODES) != exported
        on(cluster, "data", "import", str(path), "--role", "filesystem,redis")
        imported = shell(cluster, "node1", LIST_MODES)
        # what Redis loads is the append-only file the load wrote: no dump.rdb beside it
        assert imported.split("\n")[-2:] == ["appendonlydir", ""]
        assert imported == exported.replace("\ndump.rdb\n", "\n")
    finally:
        shell(cluster, "node1", f"rm -rf {DROPLETS}/modes; chown {droplets[1]} {DROPLETS}; "
                                f"chmod {droplets[0]} {DROPLETS}")  # fmt: skip
        on(cluster, "data", "cleanup")
