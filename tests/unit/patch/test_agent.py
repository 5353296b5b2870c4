"""kato/patch/agent.py against a node tree in a temporary directory: apply, revert, crashes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kato.patch import agent

AGENT = Path(agent.__file__)
RELEASE = "var/lib/kato/releases/1.0.0/router"
# kills the agent (its parent) the first time, as a node crash mid-apply would
KILLER = b'#!/bin/sh\n[ -e "$MARK" ] || { touch "$MARK"; kill -9 $PPID; sleep 5; }\n'


def tar_gz(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    # gzip's header holds the time: a fixed one keeps the same members the same artifact
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w") as tar,
    ):
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name == "apply" else 0o644
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    release = tmp_path / RELEASE
    (release / "conf").mkdir(parents=True)
    (release / "nginx.conf").write_bytes(b"old nginx.conf\n")
    (release / "nginx.conf").chmod(0o640)
    (tmp_path / "var/lib/kato/releases/current").symlink_to("1.0.0")
    return tmp_path


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    base = root / "var/lib/kato/releases"
    return {
        str(p.relative_to(base)): (p.read_bytes(), p.stat().st_mode)
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


def stage(root: Path, members: dict[str, bytes]) -> tuple[Path, str]:
    data = tar_gz(members)
    staged = root / "staged.tar.gz"
    staged.write_bytes(data)
    return staged, hashlib.sha256(data).hexdigest()


def run(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        (sys.executable, "-", str(root), *args),
        input=AGENT.read_text(),
        capture_output=True,
        text=True,
        env=env,
    )


PATCH = {"files/router/nginx.conf": b"new nginx.conf\n", "files/router/conf.d/x.conf": b"x\n"}


def test_apply_then_revert_restores_every_file_byte_for_byte(root: Path) -> None:
    before = tree(root)
    staged, sha = stage(root, PATCH)
    done = run(root, "apply", "p1", "1.0.0", str(staged), sha, "router", "{}")
    assert done.returncode == 0, done.stderr
    assert (root / RELEASE / "nginx.conf").read_bytes() == b"new nginx.conf\n"
    assert (root / RELEASE / "conf.d/x.conf").exists()
    assert not staged.exists()
    record = json.loads((root / "var/lib/kato/patches/p1.json").read_text())
    assert (record["name"], record["roles"], record["sha256"]) == ("p1", ["router"], sha)
    assert record["added"] == [str(root / RELEASE / "conf.d/x.conf")]

    state = json.loads(run(root, "state", "{}").stdout)
    assert (state["version"], list(state["records"]), state["interrupted"]) == ("1.0.0", ["p1"], [])

    assert run(root, "revert", "p1").returncode == 0
    assert tree(root) == before
    assert not (root / RELEASE / "conf.d").exists()  # the directory the patch made is gone
    assert list((root / "var/lib/kato/patches").iterdir()) == []


def test_applying_an_applied_patch_changes_nothing(root: Path) -> None:
    staged, sha = stage(root, PATCH)
    run(root, "apply", "p1", "1.0.0", str(staged), sha, "router", "{}")
    after = tree(root)
    staged, sha = stage(root, PATCH)
    done = run(root, "apply", "p1", "1.0.0", str(staged), sha, "router", "{}")
    assert json.loads(done.stdout) == {"result": "applied already"}
    assert tree(root) == after


def test_a_staged_artifact_with_another_sha256_is_refused_untouched(root: Path) -> None:
    before = tree(root)
    staged, _ = stage(root, PATCH)
    done = run(root, "apply", "p1", "1.0.0", str(staged), "0" * 64, "router", "{}")
    assert done.returncode == 3
    assert "does not have sha256" in done.stderr
    assert tree(root) == before


def test_a_failing_apply_script_is_undone(root: Path) -> None:
    before = tree(root)
    staged, sha = stage(root, {**PATCH, "apply": b"#!/bin/sh\necho broken >&2\nexit 4\n"})
    done = run(root, "apply", "p1", "1.0.0", str(staged), sha, "router", '{"apply": "apply"}')
    assert done.returncode == 3
    assert "apply exited 4: broken" in done.stderr
    assert tree(root) == before
    assert not (root / "var/lib/kato/patches/p1").exists()


def test_an_apply_killed_half_way_is_undone_by_revert_or_finished_by_apply(
    root: Path, tmp_path: Path
) -> None:
    before = tree(root)
    env = {"MARK": str(tmp_path / "killed-once"), "PATH": "/usr/bin:/bin"}
    members = {**PATCH, "apply": KILLER}
    staged, sha = stage(root, members)
    killed = run(
        root, "apply", "p1", "1.0.0", str(staged), sha, "router", '{"apply": "apply"}', env=env
    )
    assert killed.returncode == -9
    assert (root / RELEASE / "nginx.conf").read_bytes() == b"new nginx.conf\n"  # half applied
    state = json.loads(run(root, "state", "{}").stdout)
    assert (state["records"], state["interrupted"]) == ({}, ["p1"])

    assert json.loads(run(root, "revert", "p1").stdout)["result"].startswith("cleaned up")
    assert tree(root) == before

    (tmp_path / "killed-once").unlink()
    staged, sha = stage(root, members)
    run(root, "apply", "p1", "1.0.0", str(staged), sha, "router", '{"apply": "apply"}', env=env)
    staged, sha = stage(root, members)  # the node is back: the same install again
    done = run(
        root, "apply", "p1", "1.0.0", str(staged), sha, "router", '{"apply": "apply"}', env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == "applied"
    assert run(root, "revert", "p1").returncode == 0
    assert tree(root) == before


def test_members_outside_the_artifact_are_refused(root: Path) -> None:
    staged, sha = stage(root, {"../evil": b"x"})
    done = run(root, "apply", "p1", "1.0.0", str(staged), sha, "router", "{}")
    assert done.returncode == 3 and "not a plain relative file" in done.stderr
    assert not (root / "var/lib/kato/evil").exists()


def receive_apply(root: Path, data: bytes, sha: str) -> subprocess.CompletedProcess[bytes]:
    """`receive-apply` as a node runs it: the program from its file, the artifact on stdin."""
    staged = root / "var/lib/kato/staging/patch-p1.tar.gz"
    argv = ("p1", "1.0.0", str(staged), sha, "router", "{}")
    return subprocess.run(
        (sys.executable, str(AGENT), str(root), "receive-apply", *argv),
        input=data,
        capture_output=True,
    )


def test_receive_apply_takes_the_artifact_on_stdin_and_applies_it_in_one_call(root: Path) -> None:
    data = tar_gz(PATCH)
    done = receive_apply(root, data, hashlib.sha256(data).hexdigest())
    assert done.returncode == 0, done.stderr
    assert (root / RELEASE / "nginx.conf").read_bytes() == b"new nginx.conf\n"
    staging = root / "var/lib/kato/staging"
    assert staging.stat().st_mode & 0o777 == 0o700 and list(staging.iterdir()) == []


def test_receive_apply_refuses_a_link_at_the_staged_name_and_another_sha256(root: Path) -> None:
    before, data = tree(root), tar_gz(PATCH)
    canary = root / "canary"
    canary.write_bytes(b"canary\n")
    staging = root / "var/lib/kato/staging"
    staging.mkdir(mode=0o700)
    (staging / "patch-p1.tar.gz").symlink_to(canary)
    done = receive_apply(root, data, hashlib.sha256(data).hexdigest())
    assert done.returncode == 3 and b"is a symbolic link" in done.stderr
    assert canary.read_bytes() == b"canary\n" and tree(root) == before
    (staging / "patch-p1.tar.gz").unlink()
    done = receive_apply(root, data, "0" * 64)
    assert done.returncode == 3 and b"does not have sha256" in done.stderr
    assert tree(root) == before and list(staging.iterdir()) == []
