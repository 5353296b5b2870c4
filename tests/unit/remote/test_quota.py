"""The node program kato/remote/quota.py on a temporary root: what a kernel's configuration
allows, said precisely, and the xfs fstab change."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest

from tests.unit.remote import programs

THIS_KERNEL = """\
CONFIG_QUOTA=y
CONFIG_QUOTACTL=y
# CONFIG_QFMT_V2 is not set
CONFIG_XFS_FS=y
# CONFIG_XFS_QUOTA is not set
"""
FULL_KERNEL = "CONFIG_QUOTA=y\nCONFIG_QFMT_V2=m\nCONFIG_XFS_FS=m\nCONFIG_XFS_QUOTA=y\n"


def agent(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return programs.run("quota.py", root, *args)


def kernel(root: Path, config: str) -> None:
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc/config.gz").write_bytes(gzip.compress(config.encode()))


def checked(root: Path, fstype: str, options: str = "rw") -> dict[str, object]:
    return programs.answer("quota.py", root, "check", fstype, "/mnt/ebs", options)


def test_ext4_without_a_quota_format_module_is_refused_precisely(tmp_path: Path) -> None:
    kernel(tmp_path, THIS_KERNEL)
    found = checked(tmp_path, "ext4")
    assert found["supported"] is False
    assert "CONFIG_QFMT_V2 is not set" in str(found["why"])
    assert "Quota format not supported in kernel" in str(found["why"])


def test_a_loaded_quota_v2_module_counts_even_when_the_config_says_no(tmp_path: Path) -> None:
    kernel(tmp_path, THIS_KERNEL)
    (tmp_path / "sys/module/quota_v2").mkdir(parents=True)
    assert checked(tmp_path, "ext4")["supported"] is True


def test_xfs_without_xfs_quota_is_refused_precisely(tmp_path: Path) -> None:
    kernel(tmp_path, THIS_KERNEL)
    found = checked(tmp_path, "xfs")
    assert found["supported"] is False
    assert "CONFIG_XFS_QUOTA is not set" in str(found["why"])


def test_with_a_full_kernel_ext4_and_xfs_can_and_say_their_state(tmp_path: Path) -> None:
    kernel(tmp_path, FULL_KERNEL)
    assert checked(tmp_path, "ext4")["state"] == "off"
    assert checked(tmp_path, "xfs")["state"] == "off (needs a remount)"
    assert checked(tmp_path, "xfs", "rw,relatime,uquota")["state"] == "on"


@pytest.mark.parametrize("fstype", ["tmpfs", "vfat", "overlay"])
def test_other_filesystems_cannot(tmp_path: Path, fstype: str) -> None:
    found = checked(tmp_path, fstype)
    assert found["supported"] is False
    assert f"{fstype} cannot carry" in str(found["why"])


def test_xfs_setup_adds_uquota_to_fstab_and_says_a_remount_is_due(tmp_path: Path) -> None:
    kernel(tmp_path, FULL_KERNEL)
    (tmp_path / "etc").mkdir()
    fstab = tmp_path / "etc/fstab"
    fstab.write_text("# comment\n/dev/vdb /mnt/ebs xfs defaults,noatime 0 2\n")
    done = agent(tmp_path, "setup-xfs", "/mnt/ebs")
    assert done.returncode == 3
    assert "unmount and mount /mnt/ebs again (or reboot)" in done.stderr
    assert fstab.read_text().splitlines()[1].split() == [
        "/dev/vdb", "/mnt/ebs", "xfs", "defaults,noatime,uquota", "0", "2"
    ]  # fmt: skip
    again = agent(tmp_path, "setup-xfs", "/mnt/ebs")
    assert again.returncode == 3
    assert fstab.read_text().count("uquota") == 1


def test_xfs_setup_without_an_fstab_line_changes_nothing(tmp_path: Path) -> None:
    kernel(tmp_path, FULL_KERNEL)
    done = agent(tmp_path, "setup-xfs", "/mnt/ebs")
    assert done.returncode == 3
    assert "has no /etc/fstab line" in done.stderr
    assert not (tmp_path / "etc").exists()


def test_xfs_setup_on_this_kernel_is_refused_before_touching_fstab(tmp_path: Path) -> None:
    kernel(tmp_path, THIS_KERNEL)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/fstab").write_text("/dev/vdb /mnt/ebs xfs defaults 0 2\n")
    done = agent(tmp_path, "setup-xfs", "/mnt/ebs")
    assert done.returncode == 3
    assert "CONFIG_XFS_QUOTA is not set" in done.stderr
    assert (tmp_path / "etc/fstab").read_text() == "/dev/vdb /mnt/ebs xfs defaults 0 2\n"
