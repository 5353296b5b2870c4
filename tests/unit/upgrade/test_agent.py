"""kato/upgrade/agent.py against a node tree in a temporary directory: facts, stage, activate,
prune (run as the node runs it: python3 - ROOT COMMAND ARGS with the file on stdin)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from kato.upgrade import agent

AGENT = Path(agent.__file__)
RELEASES = "var/lib/kato/releases"


def tar_gz(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w") as tar,
    ):
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def call(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        (sys.executable, "-", str(root), *args),
        input=AGENT.read_text(),
        capture_output=True,
        text=True,
        timeout=30,
    )


def upload(root: Path, version: str, role: str = "router") -> tuple[Path, str]:
    data = tar_gz({"VERSION": f"{version}\n".encode(), "units/kato-router.service": b"[Unit]\n"})
    path = root / f"{role}-{version}.tar.gz"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def install_current(root: Path, version: str) -> None:
    path, sha = upload(root, version)
    assert call(root, "stage", version, "d" * 64, "router", sha, str(path)).returncode == 0
    plan = {"roles": {"router": ["kato-router.service"]}, "old_units": []}
    assert call(root, "activate", version, json.dumps(plan)).returncode == 0


def facts(root: Path) -> dict[str, object]:
    done = call(root, "facts")
    assert done.returncode == 0, done.stderr
    document: dict[str, object] = json.loads(done.stdout)
    return document


def test_stage_verifies_unpacks_marks_and_is_idempotent(tmp_path: Path) -> None:
    path, sha = upload(tmp_path, "1.2.0")
    done = call(tmp_path, "stage", "1.2.0", "a" * 64, "router", sha, str(path))
    assert done.returncode == 0 and "staged router 1.2.0" in done.stdout
    role = tmp_path / RELEASES / "1.2.0/router"
    assert (role / "VERSION").read_text() == "1.2.0\n"
    assert (role / ".kato-staged-sha256").read_text().strip() == sha
    assert not path.exists()  # the upload is removed
    path, sha = upload(tmp_path, "1.2.0")
    again = call(tmp_path, "stage", "1.2.0", "a" * 64, "router", sha, str(path))
    assert "staged already" in again.stdout and not path.exists()
    found = facts(tmp_path)
    assert found["versions"] == {
        "1.2.0": {"roles": {"router": {"staged": sha, "installed": ""}}, "digest": "a" * 64}
    }


def test_a_damaged_upload_is_refused_and_nothing_is_unpacked(tmp_path: Path) -> None:
    path, sha = upload(tmp_path, "1.2.0")
    path.write_bytes(path.read_bytes()[:-3])
    done = call(tmp_path, "stage", "1.2.0", "a" * 64, "router", sha, str(path))
    assert done.returncode == 3 and "does not have sha256" in done.stderr
    assert not (tmp_path / RELEASES / "1.2.0/router").exists()


def test_staging_never_touches_the_current_release(tmp_path: Path) -> None:
    install_current(tmp_path, "1.0.0")
    path, sha = upload(tmp_path, "1.0.0")
    done = call(tmp_path, "stage", "1.0.0", "a" * 64, "router", sha, str(path))
    assert done.returncode == 3 and "current release here" in done.stderr


def test_activate_installs_units_and_moves_current_and_previous(tmp_path: Path) -> None:
    install_current(tmp_path, "1.0.0")
    assert facts(tmp_path)["current"] == "1.0.0"
    path, sha = upload(tmp_path, "1.2.0")
    call(tmp_path, "stage", "1.2.0", "b" * 64, "router", sha, str(path))
    (tmp_path / "etc/systemd/system/kato-old.service").write_text("[Unit]\n")
    plan = {"roles": {"router": ["kato-router.service"]}, "old_units": ["kato-old.service"]}
    done = call(tmp_path, "activate", "1.2.0", json.dumps(plan))
    assert done.returncode == 0 and "current 1.0.0 -> 1.2.0" in done.stdout
    found = facts(tmp_path)
    assert (found["current"], found["previous"]) == ("1.2.0", "1.0.0")
    assert not (tmp_path / "etc/systemd/system/kato-old.service").exists()
    again = call(tmp_path, "activate", "1.2.0", json.dumps(plan))
    assert "1.2.0 is current" in again.stdout  # previous stays 1.0.0
    assert facts(tmp_path)["previous"] == "1.0.0"


def test_activate_refuses_a_release_that_is_not_staged(tmp_path: Path) -> None:
    install_current(tmp_path, "1.0.0")
    plan = {"roles": {"router": ["kato-router.service"]}, "old_units": []}
    done = call(tmp_path, "activate", "2.0.0", json.dumps(plan))
    assert done.returncode == 3 and "2.0.0 is not staged here for router" in done.stderr
    assert facts(tmp_path)["current"] == "1.0.0"


def test_an_artifact_carrying_a_link_at_the_staged_mark_is_refused(tmp_path: Path) -> None:
    """The mark is written through safe_write: a link the artifact plants there is refused,
    and the file it points at is left as it was."""
    outside = tmp_path / "outside"
    outside.write_text("keep\n")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        link = tarfile.TarInfo(".kato-staged-sha256")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
    path = tmp_path / "router-1.2.0.tar.gz"
    path.write_bytes(raw.getvalue())
    sha = hashlib.sha256(raw.getvalue()).hexdigest()
    done = call(tmp_path, "stage", "1.2.0", "a" * 64, "router", sha, str(path))
    assert done.returncode == 3, done.stderr
    assert "is a symbolic link" in done.stderr and ".kato-staged-sha256" in done.stderr
    assert outside.read_text() == "keep\n"
    assert sorted(p.name for p in (tmp_path / RELEASES / "1.2.0").iterdir()) == []


def test_activate_refuses_a_link_planted_at_a_unit_and_writes_nothing_through_it(
    tmp_path: Path,
) -> None:
    install_current(tmp_path, "1.0.0")
    path, sha = upload(tmp_path, "1.2.0")
    call(tmp_path, "stage", "1.2.0", "b" * 64, "router", sha, str(path))
    outside = tmp_path / "outside"
    outside.write_text("keep\n")
    unit = tmp_path / "etc/systemd/system/kato-router.service"
    unit.unlink()
    unit.symlink_to(outside)
    plan = {"roles": {"router": ["kato-router.service"]}, "old_units": []}
    done = call(tmp_path, "activate", "1.2.0", json.dumps(plan))
    assert done.returncode == 3
    assert f"{unit} is a symbolic link (to {outside})" in done.stderr
    assert outside.read_text() == "keep\n" and unit.is_symlink()
    assert facts(tmp_path)["current"] == "1.0.0"


def test_prune_keeps_current_previous_and_the_named(tmp_path: Path) -> None:
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        install_current(tmp_path, version)
    path, sha = upload(tmp_path, "2.0.0")
    call(tmp_path, "stage", "2.0.0", "c" * 64, "router", sha, str(path))
    done = call(tmp_path, "prune", json.dumps([]))
    assert json.loads(done.stdout) == ["1.0.0", "2.0.0"]
    versions = facts(tmp_path)["versions"]
    assert isinstance(versions, dict | list) and sorted(versions) == ["1.1.0", "1.2.0"]


def test_prune_plans_keep_current_previous_and_the_newest() -> None:
    from kato.upgrade.nodes import NodeReleases, VersionOnNode
    from kato.upgrade.prune import plan_node

    have = NodeReleases(
        "node1",
        "1.0.0",
        "1.2.1-broken",
        {v: VersionOnNode({}, None) for v in ("1.0.0", "1.1.0", "1.2.0", "1.2.1-broken", "2.0.0")},
    )
    assert plan_node(have, 0) == (("1.2.1-broken", "1.0.0"), ("2.0.0", "1.2.0", "1.1.0"))
    assert plan_node(have, 1)[1] == ("1.2.0", "1.1.0")


def test_a_hook_gets_the_plans_data_dirs_of_its_own_role_only() -> None:
    plan = {
        "roles": {"redis": [], "router": []},
        "env": {
            "redis": {"KATO_DATA_SERVICES": "/mnt/ebs/services/redis", "PATH": "/evil"},
            "router": {"KATO_DATA_LOGS": "/srv/logs"},
        },
    }
    env = agent.hook_env({"PATH": "/usr/bin", "HOME": "/root"}, plan, "redis")
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "KATO_DATA_SERVICES": "/mnt/ebs/services/redis",
    }
    assert agent.hook_env({"HOME": "/root"}, {"roles": {}}, "redis") == {"HOME": "/root"}
