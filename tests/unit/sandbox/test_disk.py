"""Disk sizes and mount points are checked before anything is made."""

from __future__ import annotations

import pytest

from kato.errors import UsageError
from kato.sandbox import disk


def test_sizes() -> None:
    assert disk.parse_size("512M") == 512 * 2**20
    assert disk.parse_size("2G") == 2 * 2**30


@pytest.mark.parametrize("size", ["", "0M", "512", "1.5G", "-1G", "10T", "512m"])
def test_bad_sizes(size: str) -> None:
    with pytest.raises(UsageError):
        disk.parse_size(size)


@pytest.mark.parametrize("at", ["mnt/ebs", "/", "/mnt/../etc", "/proc/x", "/etc", "/usr/lib"])
def test_bad_mount_points(at: str) -> None:
    with pytest.raises(UsageError):
        disk.validate_target(at)


def test_good_mount_point_is_normalised() -> None:
    assert disk.validate_target("/mnt//ebs/") == "/mnt/ebs"
