"""kato/remote/quota.py turning app directories into limited btrfs subvolumes, on a temporary
directory: the btrfs calls are stood in for (mkdir for the subvolume, a recorded qgroup limit),
the copy is the real `cp -a` through the fds. A link planted at an app directory, or an app
directory swapped for a link while kato copies it, is refused naming it, and the link's target
is left as it was."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kato.remote import quota


class FakeBtrfs:
    """What the program asked btrfs for; `during_copy` runs while `cp` copies an app."""

    def __init__(self) -> None:
        self.subvolumes: set[int] = set()
        self.limits: list[tuple[str, tuple[int, int]]] = []
        self.during_copy: Callable[[], None] = lambda: None

    def create(self, dir_fd: int, name: str) -> None:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
        self.subvolumes.add(os.stat(name, dir_fd=dir_fd).st_ino)

    def is_subvolume(self, info: os.stat_result) -> bool:
        return info.st_ino in self.subvolumes

    def run(self, *argv: str, pass_fds: tuple[int, ...] = ()) -> str:
        if argv[0] == "cp":
            self.during_copy()
            copy = [a for a in argv if a != "--reflink=always"]  # tmpfs cannot reflink
            return REAL_RUN(*copy, pass_fds=pass_fds)
        assert argv[:3] == ("btrfs", "qgroup", "limit"), argv
        info = os.stat(argv[4])  # the fd's path: what the limit really lands on
        self.limits.append((argv[3], (info.st_dev, info.st_ino)))
        return ""


REAL_RUN = quota.run


@pytest.fixture
def btrfs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBtrfs]:
    fake = FakeBtrfs()
    monkeypatch.setattr(quota, "_btrfs_state", lambda mount: "on")
    monkeypatch.setattr(quota, "create_subvolume", fake.create)
    monkeypatch.setattr(quota, "is_subvolume", fake.is_subvolume)
    monkeypatch.setattr(quota, "run", fake.run)
    yield fake


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    top = tmp_path / "k" / "dea"
    (top / "app-1" / "sub").mkdir(parents=True)
    (top / "app-1" / "sub" / "bits").write_bytes(b"x" * 5000)
    (top / "app-1" / "link").symlink_to("sub/bits")
    os.chmod(top / "app-1", 0o750)
    os.chown(top / "app-1", 1234, 1234)
    return top


def victim(tmp_path: Path) -> Path:
    """A directory root must not touch, with a file in it."""
    place = tmp_path / "victim"
    place.mkdir()
    (place / "secret").write_text("keep me\n")
    return place


def state(path: Path) -> str:
    found = sorted((str(p.relative_to(path)), p.lstat().st_mode) for p in path.rglob("*"))
    data = b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())
    return f"{found} {hashlib.sha256(data).hexdigest()}"


def setup(mount: Path, apps: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = quota.main([str(mount), "setup-btrfs", str(mount), str(apps), "10485760"])
    out = capsys.readouterr()
    return status, out.out + out.err


def test_each_app_becomes_a_limited_subvolume_with_the_same_tree(
    tmp_path: Path, apps: Path, btrfs: FakeBtrfs, capsys: pytest.CaptureFixture[str]
) -> None:
    before = state(apps / "app-1")
    status, said = setup(tmp_path, apps, capsys)
    assert status == 0, said
    assert '"app-1": 10485760' in said
    app = (apps / "app-1").lstat()
    assert app.st_ino in btrfs.subvolumes
    assert (oct(app.st_mode & 0o7777), app.st_uid, app.st_gid) == (oct(0o750), 1234, 1234)
    assert state(apps / "app-1") == before
    assert btrfs.limits == [("10485760", (app.st_dev, app.st_ino))]
    assert sorted(os.listdir(apps)) == ["app-1"]  # no staged or old copy left beside it
    status, said = setup(tmp_path, apps, capsys)  # a re-run only sets the limit again
    assert status == 0 and (apps / "app-1").lstat().st_ino == app.st_ino


def test_a_link_planted_at_an_app_directory_is_refused_naming_it(
    tmp_path: Path, apps: Path, btrfs: FakeBtrfs, capsys: pytest.CaptureFixture[str]
) -> None:
    target = victim(tmp_path)
    before, app = state(target), (apps / "app-1").lstat().st_ino
    (apps / "app-z").symlink_to(target)
    status, said = setup(tmp_path, apps, capsys)
    assert status == 1
    assert f"{apps}/app-z is a symbolic link (to {target})" in said
    assert state(target) == before and target.lstat().st_ino not in btrfs.subvolumes
    assert (apps / "app-1").lstat().st_ino == app  # refused before any app was changed
    assert btrfs.limits == []


def test_an_app_directory_swapped_for_a_link_during_the_copy_is_refused(
    tmp_path: Path, apps: Path, btrfs: FakeBtrfs, capsys: pytest.CaptureFixture[str]
) -> None:
    target = victim(tmp_path)
    before, app_before = state(target), state(apps / "app-1")

    def swap() -> None:  # what the app's user could do between kato's check and its use
        (apps / "app-1").rename(apps / "app-1.mine")
        (apps / "app-1").symlink_to(target)

    btrfs.during_copy = swap
    status, said = setup(tmp_path, apps, capsys)
    assert status == 1
    assert f"{apps}/app-1 was replaced while kato copied it" in said
    assert state(target) == before
    assert os.readlink(apps / "app-1") == str(target)  # put back as the user left it
    assert state(apps / "app-1.mine") == app_before
    assert sorted(os.listdir(apps)) == ["app-1", "app-1.mine"]
    assert btrfs.limits == []


def test_a_link_at_the_containers_dir_itself_is_refused(
    tmp_path: Path, btrfs: FakeBtrfs, capsys: pytest.CaptureFixture[str]
) -> None:
    target = victim(tmp_path)
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "dea").symlink_to(target)
    status, said = setup(tmp_path, tmp_path / "k" / "dea", capsys)
    assert status == 1
    assert f"{tmp_path}/k/dea is a symbolic link" in said
    assert os.listdir(target) == ["secret"]


def test_an_app_that_vanishes_part_way_exits_4_naming_it_and_what_was_done(
    tmp_path: Path, apps: Path, btrfs: FakeBtrfs, capsys: pytest.CaptureFixture[str]
) -> None:
    (apps / "app-2").mkdir()
    btrfs.during_copy = lambda: (apps / "app-2").rmdir()  # removed while app-1 is copied
    status, said = setup(tmp_path, apps, capsys)
    assert status == quota.APPS_FAILED == 4
    assert f"app {apps}/app-2: it vanished (no such directory) (1 limited before it)" in said
    assert len(btrfs.limits) == 1  # app-1 is a limited subvolume already: not "nothing done"


def test_a_failed_limit_or_a_missing_apps_dir_is_not_a_filesystem_refusal(
    tmp_path: Path, apps: Path, btrfs: FakeBtrfs, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*argv: str, pass_fds: tuple[int, ...] = ()) -> str:
        if argv[0] == "cp":
            return REAL_RUN(*[a for a in argv if a != "--reflink=always"], pass_fds=pass_fds)
        raise quota.Refused("btrfs qgroup limit: No space left on device")

    btrfs.run = fail  # type: ignore[method-assign]
    quota.run = fail  # the fixture bound the old one
    status, said = setup(tmp_path, apps, capsys)
    assert status == 4 and f"app {apps}/app-1: btrfs qgroup limit: No space left" in said
    status, said = setup(tmp_path, tmp_path / "k" / "gone", capsys)
    assert status == 4
    assert f"the apps' directory {tmp_path}/k/gone: no such directory" in said
