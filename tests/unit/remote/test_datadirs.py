"""The node program kato/remote/datadirs.py, run as kato runs it (python3 - ROOT ...) on a
temporary directory standing for the node's root."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.remote import programs

UNITS = json.dumps(["kato-redis.service"])
DECLARED = "/var/lib/kato/data/services/redis"


def agent(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return programs.run("datadirs.py", root, *args)


def ok(root: Path, *args: str) -> dict[str, object]:
    return programs.answer("datadirs.py", root, *args)


def drop_in(root: Path) -> Path:
    return root / "etc/systemd/system/kato-redis.service.d/50-kato-datadirs.conf"


def test_no_record_means_every_dir_at_its_declared_path(tmp_path: Path) -> None:
    assert ok(tmp_path, "locations") == {"format": 1, "data_dirs": {}, "previous": {}, "moving": {}}


def test_record_writes_drop_in_then_record_and_back_again(tmp_path: Path) -> None:
    moved = ok(tmp_path, "record", "redis", "services", DECLARED, "/mnt/ebs/redis", UNITS)
    assert moved["data_dirs"] == {
        "redis": {"services": {"path": "/mnt/ebs/redis", "declared": DECLARED}}
    }
    assert moved["previous"] == {"redis": {"services": [DECLARED]}}
    text = drop_in(tmp_path).read_text()
    assert "RequiresMountsFor=/mnt/ebs/redis\n" in text
    assert f"BindPaths=/mnt/ebs/redis:{DECLARED}\n" in text
    assert ok(tmp_path, "locations") == moved
    record = tmp_path / "var/lib/kato/datadirs.yaml"
    assert json.loads(record.read_text()) == moved
    # no temporary file is left behind
    assert sorted(p.name for p in record.parent.iterdir()) == ["datadirs.yaml"]

    back = ok(tmp_path, "record", "redis", "services", DECLARED, DECLARED, UNITS)
    assert back["data_dirs"] == {}
    assert back["previous"] == {"redis": {"services": ["/mnt/ebs/redis"]}}
    assert not drop_in(tmp_path).exists()


def test_recording_the_same_place_twice_changes_nothing(tmp_path: Path) -> None:
    first = ok(tmp_path, "record", "redis", "services", DECLARED, "/mnt/a", UNITS)
    stamp = (tmp_path / "var/lib/kato/datadirs.yaml").stat().st_mtime_ns
    assert ok(tmp_path, "record", "redis", "services", DECLARED, "/mnt/a", UNITS) == first
    assert (tmp_path / "var/lib/kato/datadirs.yaml").stat().st_mtime_ns == stamp


def test_forget_drops_an_old_copy(tmp_path: Path) -> None:
    ok(tmp_path, "record", "redis", "services", DECLARED, "/mnt/a", UNITS)
    ok(tmp_path, "record", "redis", "services", DECLARED, "/mnt/b", UNITS)
    assert ok(tmp_path, "locations")["previous"] == {"redis": {"services": [DECLARED, "/mnt/a"]}}
    after = ok(tmp_path, "forget", "redis", "services", "/mnt/a")
    assert after["previous"] == {"redis": {"services": [DECLARED]}}


@pytest.mark.parametrize("planted", ["var/lib/kato/datadirs.yaml", "drop-in"])
def test_a_planted_symlink_is_refused_never_followed(tmp_path: Path, planted: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    link = drop_in(tmp_path) if planted == "drop-in" else tmp_path / planted
    link.parent.mkdir(parents=True)
    link.symlink_to(victim)
    done = agent(tmp_path, "record", "redis", "services", DECLARED, "/mnt/ebs/redis", UNITS)
    assert done.returncode == 1
    assert f"{link} is a symbolic link" in done.stderr
    assert victim.read_text() == "untouched\n"


def test_a_link_planted_at_a_drop_in_directory_is_refused_never_followed(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    directory = drop_in(tmp_path).parent
    directory.parent.mkdir(parents=True)
    directory.symlink_to(elsewhere)
    done = agent(tmp_path, "record", "redis", "services", DECLARED, "/mnt/ebs/redis", UNITS)
    assert done.returncode == 1
    assert f"{directory} is a symbolic link" in done.stderr
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "var/lib/kato/datadirs.yaml").exists()


@pytest.mark.parametrize("path", ["relative", "/mnt/../etc", "/mnt/with space", "/mnt/a:b"])
def test_a_path_that_is_not_plain_is_refused(tmp_path: Path, path: str) -> None:
    done = agent(tmp_path, "record", "redis", "services", DECLARED, path, UNITS)
    assert done.returncode == 1
    assert "not a plain absolute path" in done.stderr
    assert not (tmp_path / "var").exists()


def test_a_record_that_is_not_ours_is_reported(tmp_path: Path) -> None:
    record = tmp_path / "var/lib/kato/datadirs.yaml"
    record.parent.mkdir(parents=True)
    record.write_text("data_dirs: [oops\n")
    done = agent(tmp_path, "locations")
    assert done.returncode == 1
    assert "not a kato data-dir record" in done.stderr


def test_probe_reports_kind_size_and_mount(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a").write_bytes(b"x" * 10000)
    os.link(data / "a", data / "hard")  # counted once
    (data / "link").symlink_to("/etc/passwd")  # never followed
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/mountinfo").write_text(
        "22 1 0:21 / / rw - ext4 /dev/vda1 rw\n"
        "40 22 0:40 / /data rw,relatime - btrfs /dev/loop3 rw,space_cache=v2\n"
    )
    found = ok(tmp_path, "probe", "/data", "/data/nope")
    here = found["/data"]
    assert isinstance(here, dict)
    assert (here["kind"], here["fstype"], here["mount"], here["files"]) == (
        "dir",
        "btrfs",
        "/data",
        2,
    )
    assert 10000 <= here["used"] < 40000
    missing = found["/data/nope"]
    assert isinstance(missing, dict)
    assert (missing["kind"], missing["exists"], missing["fstype"]) == ("missing", False, "btrfs")


def test_a_relocation_under_way_is_noted_and_ended(tmp_path: Path) -> None:
    noted = ok(tmp_path, "moving", "redis", "services", "/mnt/ebs/redis", "copying")
    assert noted["moving"] == {
        "redis": {"services": {"dest": "/mnt/ebs/redis", "phase": "copying"}}
    }
    assert ok(tmp_path, "moving", "redis", "services", "-", "-")["moving"] == {}


def test_node_facts_reads_the_record_and_the_moved_dirs_free_space(
    tmp_path: Path, bundle: Path
) -> None:
    """One round trip for `kato status`: node_facts.py reads the record through datadirs.py
    (shipped beside it) and covers the moved data dirs' filesystems."""
    root = tmp_path / "node"
    (root / "mnt/ebs/redis").mkdir(parents=True)
    ok(root, "record", "redis", "services", DECLARED, "/mnt/ebs/redis", UNITS)
    found: Any = programs.facts(bundle, root, {"datadirs": True})
    assert found["datadirs"]["data_dirs"]["redis"]["services"]["path"] == "/mnt/ebs/redis"
    assert found["space"]["/mnt/ebs/redis"]["exists"] is True
