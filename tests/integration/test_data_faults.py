"""kato data under faults: bad archives refused with the nodes unchanged, a node crashed or cut
off mid-export, a full destination, an import whose load fails (rolled back)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kato.data import archive as archive_
from kato.data import node_import
from kato.data.manifest import Manifest, decode
from kato.data.verify import read_manifest
from tests.integration.conftest import KATO, Cluster, kato
from tests.integration.test_data import UNCHANGED, on, shell

pytestmark = pytest.mark.integration
Members = dict[str, bytes]


def writing(data: bytes) -> Callable[[archive_.Sink], int]:
    """A member's fill: these bytes, as they are."""
    return lambda sink: sink.write(data)


@pytest.fixture(scope="module")
def good(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    shell(cluster, "node1", "mkdir -p /var/lib/kato/data/droplets/keep && "
          "echo precious > /var/lib/kato/data/droplets/keep/file")  # fmt: skip
    directory = tmp_path_factory.mktemp("good")
    on(cluster, "data", "export", str(directory / "good.tar"), "--compress", "none")
    return directory / "good.tar"


def read(path: Path) -> tuple[Manifest, Members]:
    with tarfile.open(path) as tar:
        manifest = decode(tar.extractfile("MANIFEST.json").read())  # type: ignore[union-attr]
        members = {
            m.name: tar.extractfile(m.name).read()  # type: ignore[union-attr]
            for m in manifest.members
        }
    return manifest, members


def write(path: Path, manifest: Manifest, members: Members, fix_sums: bool = True) -> Path:
    """An archive as export would write it, from (possibly tampered) parts."""
    listed = []
    for m in manifest.members:
        if fix_sums and m.name in members:
            data = members[m.name]
            m = replace(m, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        listed.append(m)
    with path.open("wb") as file:
        writer = archive_.ArchiveWriter(file, "none", 0)
        for name, data in members.items():
            writer.add(name, writing(data))
        writer.finish(replace(manifest, members=tuple(listed)))
    return path


def tree(entries: Callable[[tarfile.TarFile], None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        root = tarfile.TarInfo(".")
        root.type, root.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(root)
        entries(tar)
    return buffer.getvalue()


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        data = b"x" if kind == tarfile.REGTYPE else b""
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


DROPLETS = "data/node1/filesystem/droplets.tar"


def bad_archives(good: Path, directory: Path) -> Iterator[tuple[str, Path, str]]:
    """(what, path, the text the refusal must contain)."""
    raw = good.read_bytes()
    manifest, members = read(good)
    flipped = bytearray(raw)
    offset = raw.index(b"precious")
    flipped[offset] ^= 0x20
    yield "flipped byte", _put(directory / "flipped.tar", bytes(flipped)), "sha256"
    yield "truncated", _put(directory / "cut.tar", raw[: len(raw) // 2]), "truncated"
    yield "truncated in the manifest", _put(directory / "cut0.tar", raw[:4000]), "MANIFEST"
    fewer = dict(members)
    fewer.pop(DROPLETS)
    yield "missing member", write(directory / "missing.tar", manifest, fewer, False), "missing"
    edited = replace(manifest, members=tuple(
        replace(m, sha256="0" * 64) if m.name == DROPLETS else m for m in manifest.members
    ))  # fmt: skip
    yield "edited manifest", write(directory / "edited.tar", edited, members, False), "sha256"
    newer = raw.replace(b'"format": 1', b'"format": 9', 1)
    yield "newer format", _put(directory / "newer.tar", newer), "newer"
    for what, add, needle in (
        ("path traversal", entry("../../etc/cron.d/evil"), "unsafe path"),
        ("absolute path", entry("/etc/cron.d/evil"), "unsafe path"),
        ("link escaping", entry("escape", tarfile.SYMTYPE, "../../../../etc"), "outside"),
        ("absolute link", entry("escape", tarfile.SYMTYPE, "/etc"), "outside"),
        ("device node", entry("disk", tarfile.BLKTYPE), "device"),
        ("char device", entry("null", tarfile.CHRTYPE), "device"),
        ("hard link out", entry("hl", tarfile.LNKTYPE, "/etc/shadow"), "hard link"),
    ):
        parts = {**members, DROPLETS: tree(add)}
        name = what.replace(" ", "-")
        yield what, write(directory / f"{name}.tar", manifest, parts), needle


def error_of(stderr: str) -> str:
    (line,) = [line for line in stderr.splitlines() if line.startswith("error: ")]
    return line


def _put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_bad_archives_are_refused_by_verify_and_import_and_nothing_changes(
    cluster: Cluster, good: Path, tmp_path: Path
) -> None:
    before = shell(cluster, "node1", UNCHANGED)
    for what, path, needle in bad_archives(good, tmp_path):
        verified = kato("data", "verify", str(path), check=False)
        assert verified.returncode == 6, (what, verified.stderr)
        assert needle in verified.stderr, (what, verified.stderr)
        imported = on(cluster, "data", "import", str(path), check=False)
        assert imported.returncode == 6, (what, imported.stderr)
    assert shell(cluster, "node1", UNCHANGED) == before
    assert "kato-import" not in shell(
        cluster, "node1", "ls -a /var/lib/kato/data /var/lib/kato/data/services"
    )


def test_an_import_whose_load_fails_puts_everything_back(
    cluster: Cluster, good: Path, tmp_path: Path
) -> None:
    manifest, members = read(good)
    members["data/node1/postgresql/services.dump"] = b"CREATE TABLE broken (;\n"
    bad = write(tmp_path / "badsql.tar", manifest, members)
    kato("data", "verify", str(bad))  # well-formed: only loading it shows the problem
    before = shell(cluster, "node1", UNCHANGED)
    done = on(cluster, "data", "import", str(bad), check=False)
    assert done.returncode == 1 and "postgresql" in done.stderr
    assert "put back" in done.stderr
    assert shell(cluster, "node1", UNCHANGED) == before
    host = cluster.host("node1")
    assert host.service("kato-postgresql").is_running
    on(cluster, "data", "cleanup")


def export_in_background(cluster: Cluster, dest: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ("timeout", "-s", "ABRT", "150", KATO[0], "-X", "faulthandler", *KATO[1:],
         "--cluster", str(cluster.home / "cluster.yaml"), "data", "export", str(dest),
         "--role", "filesystem", "--compress", "none"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env},
    )  # fmt: skip


def wait_for_partial(directory: Path, size: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        partial = [p for p in directory.iterdir() if "kato-partial" in p.name]
        if partial and partial[0].stat().st_size > size:
            return
        time.sleep(0.05)
    raise AssertionError(f"the export never got going: {proc.poll()} {proc.stderr}")


@pytest.fixture
def big_droplet(cluster: Cluster) -> Iterator[None]:
    shell(cluster, "node1", "head -c 700M /dev/urandom > /var/lib/kato/data/droplets/big.bin")
    yield
    shell(cluster, "node1", "rm -f /var/lib/kato/data/droplets/big.bin")


@pytest.mark.parametrize("fault", ["crash", "partition"])
def test_a_node_lost_mid_export_fails_naming_it_and_publishes_nothing(
    cluster: Cluster, big_droplet: None, tmp_path: Path, fault: str
) -> None:
    older = tmp_path / "older.tar"
    older.write_bytes(b"an older archive")
    proc = export_in_background(cluster, tmp_path, KATO_COMMAND_TIMEOUT="5")
    wait_for_partial(tmp_path, 50 * 2**20, proc)
    kato("sandbox", fault, "node1", "--name", cluster.name)
    try:
        _, stderr = proc.communicate(timeout=180)
    finally:
        heal = "start" if fault == "crash" else "heal"
        kato("sandbox", heal, "node1", "--name", cluster.name)
    assert proc.returncode in (1, 3, 5), stderr
    assert "node1" in stderr and ("transfer" in stderr or "command" in stderr), stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["older.tar"]
    assert older.read_bytes() == b"an older archive"
    wait_healthy(cluster)
    # The export could not release the lock on the lost core node: it names itself as the
    # holder until its TTL runs out, and its process is gone, so break it as the hint says.
    state = json.loads(on(cluster, "lock", "status", "--json").stdout)
    if state["record"] is not None:
        assert state["record"]["pid"] == proc.pid or "data export" in state["record"]["command"]
        on(cluster, "lock", "break", state["record"]["id"])


def test_an_export_asks_only_the_nodes_carrying_its_roles(cluster: Cluster, tmp_path: Path) -> None:
    """node2 cut off: node1's filesystem still exports and imports back (node2 carries none of
    it and is not asked: an import reads its manifest first); an export of every role asks
    node2 and stops with exit 5 naming it, writing nothing."""
    kato("sandbox", "partition", "node2", "--name", cluster.name)
    try:
        alone = on(cluster, "data", "export", str(tmp_path / "fs.tar.zst"), "--role",
                   "filesystem", check=False)  # fmt: skip
        back = on(cluster, "data", "import", str(tmp_path / "fs.tar.zst"), check=False)
        every = on(cluster, "data", "export", str(tmp_path / "all.tar.zst"), check=False)
    finally:
        kato("sandbox", "heal", "node2", "--name", cluster.name)
    on(cluster, "data", "cleanup", check=True)  # the previous droplets the import kept
    assert alone.returncode == 0, alone.stderr
    assert back.returncode == 0, back.stderr
    assert every.returncode == 5, every.stderr
    assert "node2" in every.stderr and "nothing was changed" in every.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fs.tar.zst"]
    wait_healthy(cluster)


# What the filesystem role's data dir holds: each file's name and size, and the big one's hash.
DROPLETS_HELD = (
    "cd /var/lib/kato/data/droplets && find . -type f -printf '%p %s\\n' | LC_ALL=C sort && "
    "sha256sum big.bin"
)


def staged_bytes(cluster: Cluster) -> int:
    """What node1's import staging dirs hold so far (0 when there are none)."""
    said = shell(cluster, "node1", "du -sbc /var/lib/kato/data/.kato-import-* 2>/dev/null | "
                 "tail -n1 | cut -f1")  # fmt: skip
    return int(said.strip() or 0)


def test_a_node_lost_while_an_import_stages_names_what_it_keeps_and_the_cleanup(
    cluster: Cluster, big_droplet: None, tmp_path: Path
) -> None:
    on(cluster, "data", "export", str(tmp_path), "--only", "filesystem")
    (archive,) = tmp_path.iterdir()
    before = shell(cluster, "node1", DROPLETS_HELD)
    proc = subprocess.Popen(
        (*KATO, "--cluster", str(cluster.home / "cluster.yaml"), "data", "import", str(archive)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "KATO_COMMAND_TIMEOUT": "5"},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while staged_bytes(cluster) < 50 * 2**20:  # the member is streaming into node1's staging
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    kato("sandbox", "crash", "node1", "--name", cluster.name)
    try:
        _, stderr = proc.communicate(timeout=180)
    finally:
        kato("sandbox", "start", "node1", "--name", cluster.name)
    said = " ".join(stderr.split())
    assert proc.returncode == 5, stderr
    assert "staging left on the node (node1: /var/lib/kato/data/.kato-import-" in said, said
    assert "`kato data cleanup` removes it once it answers" in said
    wait_healthy(cluster)
    state = json.loads(on(cluster, "lock", "status", "--json").stdout)
    if state["record"] is not None:  # held by the import on the lost core node, now gone
        on(cluster, "lock", "break", state["record"]["id"])
    assert staged_bytes(cluster) > 0  # what the message named is there ...
    on(cluster, "data", "cleanup")
    assert staged_bytes(cluster) == 0  # ... and the way on it gave removes it
    # nothing was switched (the other roles' files are rewritten by their start after the crash)
    assert shell(cluster, "node1", DROPLETS_HELD) == before


LIMIT = "/run/systemd/system/kato-filesystem.service.d/kato-test-limit.conf"
RESTARTS = "for i in 1 2 3 4 5; do systemctl restart kato-filesystem.service; done"


@pytest.fixture
def start_limit_spent(cluster: Cluster) -> Iterator[None]:
    """node1's filesystem role running with systemd's start rate limit spent: a sixth start
    within its window is refused (a crash loop's guard). The window is made ten minutes for the
    test, so the five restarts are sure to count; put back as it was at the end."""
    limit = "[Unit]\nStartLimitIntervalSec=600\nStartLimitBurst=5\n"
    shell(cluster, "node1", f"mkdir -p {LIMIT.rsplit('/', 1)[0]} && printf '{limit}' >{LIMIT} "
          f"&& systemctl daemon-reload && systemctl reset-failed kato-filesystem.service && "
          f"{RESTARTS}")  # fmt: skip
    try:
        refused = cluster.ssh("node1", "systemctl restart kato-filesystem.service")
        assert refused.returncode != 0 and "too often" in refused.stderr  # the limit is spent
        shell(cluster, "node1", f"systemctl reset-failed kato-filesystem.service && {RESTARTS}")
        yield
    finally:
        shell(cluster, "node1", f"rm -f {LIMIT} && systemctl daemon-reload && "
              "systemctl reset-failed kato-filesystem.service; "
              "systemctl start kato-filesystem.service")  # fmt: skip


@pytest.mark.usefixtures("start_limit_spent")
def test_an_import_after_restarts_that_spent_the_start_rate_limit_still_starts_the_role(
    cluster: Cluster, tmp_path: Path
) -> None:
    """An import (and the put-back of a failed one) right after five restarts must still start
    the role."""
    on(cluster, "data", "export", str(tmp_path), "--only", "filesystem")
    (archive,) = tmp_path.iterdir()
    try:
        done = on(cluster, "data", "import", str(archive), check=False)
        assert done.returncode == 0, done.stderr
        assert cluster.host("node1").service("kato-filesystem").is_running
    finally:
        on(cluster, "data", "cleanup", check=False)


@pytest.mark.usefixtures("start_limit_spent")
@pytest.mark.parametrize("action", ["restart", "start"])
def test_kato_start_and_restart_after_restarts_that_spent_the_start_rate_limit(
    cluster: Cluster, action: str
) -> None:
    """`kato restart` (and `kato start` of the role stopped since: a stop is no start) right
    after five restarts starts the role, as the import does."""
    pid = "systemctl show -p MainPID --value kato-filesystem.service"
    before = shell(cluster, "node1", pid).strip()
    if action == "start":
        shell(cluster, "node1", "systemctl stop kato-filesystem.service")
    done = on(cluster, action, "--role", "filesystem", "--node", "node1", check=False)
    assert done.returncode == 0, done.stderr
    assert cluster.host("node1").service("kato-filesystem").is_running
    assert shell(cluster, "node1", pid).strip() not in (before, "0")  # really started again


def wait_healthy(cluster: Cluster) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if on(cluster, "status", check=False).returncode == 0:
            return
        time.sleep(1)
    raise AssertionError("the cluster did not come back healthy")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(("mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)), check=True)
    yield mount
    subprocess.run(("umount", str(mount)), check=True)


def test_a_full_destination_fails_cleanly_and_keeps_older_archives(
    cluster: Cluster, small_fs: Path
) -> None:
    shell(cluster, "node1", "head -c 100M /dev/urandom > /var/lib/kato/data/droplets/mid.bin")
    try:
        older = small_fs / "older.tar.zst"
        older.write_bytes(b"older")
        done = on(cluster, "data", "export", str(small_fs), "--role", "filesystem", check=False)
        assert done.returncode == 1 and "No space left" in done.stderr, done.stderr
        assert sorted(p.name for p in small_fs.iterdir()) == ["older.tar.zst"]
        assert older.read_bytes() == b"older"
        shell(cluster, "node1", "head -c 300M /dev/zero >> /var/lib/kato/data/droplets/mid.bin")
        refused = on(cluster, "data", "export", str(small_fs), "--role", "filesystem",
                     "--compress", "none", check=False)  # fmt: skip
        assert refused.returncode == 7 and "not enough space" in refused.stderr
    finally:
        shell(cluster, "node1", "rm -f /var/lib/kato/data/droplets/mid.bin")


def with_manifest(path: Path, source: Path, manifest: Manifest) -> Path:
    """`source` (a zstd archive export wrote) with its manifest frame replaced by `manifest`'s
    (the frame keeps its length: the manifest fills a fixed slot)."""
    from datetime import datetime

    from kato.data.manifest import NAME, SLOT

    mtime = int(datetime.fromisoformat(manifest.created).timestamp())
    frame = archive_.raw_frame(archive_.tar_header(NAME, SLOT, mtime) + manifest.encode(), "zstd")
    raw = bytearray(source.read_bytes())
    assert raw[: len(frame)] != frame
    raw[: len(frame)] = frame
    return _put(path, bytes(raw))


@pytest.fixture
def noisy_droplets(cluster: Cluster, good: Path) -> Iterator[None]:
    """256 KiB of random bytes in the droplets dir (removed after): most of the tree's
    compressed bytes are then its data, so a byte flipped mid-member damages the data, and the
    refusal comes while the node's tar is still writing the staging dir (it must be gone after)."""
    noise = "/var/lib/kato/data/droplets/noise.bin"
    shell(cluster, "node1", f"head -c 262144 /dev/urandom > {noise}")
    yield
    shell(cluster, "node1", f"rm -f {noise}")


def test_a_format_2_archive_tampered_or_lying_is_refused_before_any_node_changes(
    cluster: Cluster, noisy_droplets: None, tmp_path: Path
) -> None:
    source = tmp_path / "good.tar.zst"
    on(cluster, "data", "export", str(source), "--role", "filesystem,redis")
    manifest = read_manifest(source)
    assert manifest.format == 2
    tree = next(m for m in manifest.members if m.name == DROPLETS)
    assert tree.entries is not None and tree.entries >= 4  # ., keep, keep/file, noise.bin
    cases = []
    for lie in (1, tree.entries - 1, tree.entries + 1):
        members = tuple(replace(m, entries=lie) if m is tree else m for m in manifest.members)
        lying = with_manifest(tmp_path / f"lie{lie}.tar.zst", source,
                              replace(manifest, members=members))  # fmt: skip
        cases.append((f"lists {lie} entries", lying, "tampered"))
    regions = node_import.regions(source, manifest)
    assert regions is not None
    start, end = regions[DROPLETS]
    raw = bytearray(source.read_bytes())
    raw[(start + end) // 2] ^= 0xFF  # inside the tree's compressed bytes
    cases.append(("flipped byte", _put(tmp_path / "flipped.tar.zst", bytes(raw)), "corrupt"))
    before = shell(cluster, "node1", UNCHANGED)
    for what, path, _ in cases:
        # a dry run verifies the whole archive here, as `kato data verify` does, and says so
        dry = on(cluster, "data", "import", str(path), "--dry-run", check=False)
        verified = kato("data", "verify", str(path), check=False)
        assert dry.returncode == verified.returncode == 6, (what, dry.stderr)
        assert error_of(dry.stderr) == error_of(verified.stderr), (what, dry.stderr)
        if what.startswith("lists"):
            assert DROPLETS in error_of(dry.stderr), (what, dry.stderr)
    assert shell(cluster, "node1", UNCHANGED) == before  # the dry runs sent and changed nothing
    for what, path, needle in cases:
        imported = on(cluster, "data", "import", str(path), check=False)
        # refused by the check here (exit 6) or by the node's own (1: zstd's checksum, sha256)
        assert imported.returncode in (1, 6), (what, imported.stderr)
        refusal = "cannot be trusted" if imported.returncode == 6 else "corrupted"
        assert needle in imported.stderr or refusal in imported.stderr, (what, imported.stderr)
        assert "switching" not in imported.stderr, (what, imported.stderr)
        verified = kato("data", "verify", str(path), check=False)
        assert verified.returncode == 6, (what, verified.stderr)
    assert shell(cluster, "node1", UNCHANGED) == before
    # the role cycles started in standby while the members staged were cancelled: none is
    # left waiting on the node (the last refusal was the node's, after they started)
    assert cluster.ssh("node1", "pgrep -af 'role_cycle[.]py --wait' || true").stdout.strip() == ""
    assert "kato-import" not in shell(
        cluster, "node1", "ls -a /var/lib/kato/data /var/lib/kato/data/services"
    )
