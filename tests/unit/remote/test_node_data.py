"""kato/remote/node_data.py, run as kato runs it on a node (a program of the node agent, the
data alone on stdin), on temporary directories of this machine."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest

from kato.data import stream
from kato.transport.base import CommandResult


def run(
    *args: str, data: bytes = b"", env: dict[str, str] | None = None
) -> tuple[int, bytes, stream.NodeAnswer | None]:
    argv = stream.argv(*args)
    program = Path(stream.__file__).parent.parent / "remote" / stream.PROGRAM
    done = subprocess.run((sys.executable, "-S", str(program), *args), input=data,
                          capture_output=True, timeout=60, env=env)  # fmt: skip
    result = CommandResult("here", argv, done.returncode, "", done.stderr.decode(), 0.0)
    return done.returncode, done.stdout, stream.answer(result)


def unzstd(data: bytes) -> bytes:
    return subprocess.run(("zstd", "-d", "-c"), input=data, capture_output=True,
                          check=True).stdout  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "sub dir").mkdir(parents=True)
    (root / "sub dir" / "random.bin").write_bytes(os.urandom(300_000))
    (root / "text.log").write_text("line\n" * 50_000)
    (root / "link").symlink_to("text.log")
    os.chmod(root, 0o750)
    return root


def test_export_of_a_tree_sends_its_tar_compressed_padded_with_its_size_and_sha256(
    tree: Path,
) -> None:
    status, out, answer = run("export", "tree", str(tree))
    assert status == 0 and answer is not None and answer.status == 0
    member = unzstd(out)
    assert len(member) == answer.size + (-answer.size % 512)
    assert not member[answer.size :].strip(b"\0")
    assert hashlib.sha256(member[: answer.size]).hexdigest() == answer.sha256
    with tarfile.open(fileobj=io.BytesIO(member[: answer.size])) as tar:
        names = sorted(n.rstrip("/") for n in tar.getnames())
    assert names == [".", "./link", "./sub dir", "./sub dir/random.bin", "./text.log"]


def test_export_of_a_failing_dump_reports_its_status_and_last_error_line() -> None:
    status, out, answer = run("export", "stream", "sh", "-c", "echo part; echo broke >&2; exit 3")
    assert status == 0 and answer is not None
    assert (answer.status, answer.error) == (3, "broke")
    assert unzstd(out)[: answer.size] == b"part\n"


def test_export_of_a_missing_dir_fails_with_tar_s_reason(tmp_path: Path) -> None:
    _, _, answer = run("export", "tree", str(tmp_path / "gone"))
    assert answer is not None and answer.status == 2 and "gone" in answer.error


def test_import_writes_the_tree_it_is_sent(tree: Path, tmp_path: Path) -> None:
    _, out, sent = run("export", "tree", str(tree))
    assert sent is not None
    staging, staged = tmp_path / "staging", tmp_path / "staging" / "data"
    args = ("import", "tree", str(staging), str(staged), str(sent.size), sent.sha256, "5")
    status, _, answer = run(*args, data=out)
    assert (
        status == 0
        and answer is not None
        and (answer.size, answer.sha256)
        == (
            sent.size,
            sent.sha256,
        )
    )
    assert (staged / "sub dir" / "random.bin").read_bytes() == (
        tree / "sub dir" / "random.bin"
    ).read_bytes()
    assert os.readlink(staged / "link") == "text.log"
    assert (staging.stat().st_mode & 0o777, staged.stat().st_mode & 0o777) == (0o700, 0o750)


def test_import_of_a_member_that_does_not_match_its_sha256_leaves_nothing_staged(
    tree: Path, tmp_path: Path
) -> None:
    _, out, sent = run("export", "tree", str(tree))
    assert sent is not None
    staged = tmp_path / "staging" / "data"
    args = ("import", "tree", str(staged.parent), str(staged), str(sent.size), "0" * 64, "5")
    status, _, answer = run(*args, data=out)
    assert status == 1 and answer is not None
    assert answer.error == "sha256 does not match the manifest: corrupt" and answer.invalid
    assert not staged.exists()


def test_import_of_a_dump_refuses_data_after_the_member_s_end(tmp_path: Path) -> None:
    dump = b"SELECT 1;\n"
    frames = subprocess.run(("zstd", "-c"), input=dump + bytes(502) + b"extra",
                            capture_output=True, check=True).stdout  # fmt: skip
    staged = tmp_path / "staging" / "services.dump"
    sha = hashlib.sha256(dump).hexdigest()
    status, _, answer = run("import", "stream", str(staged.parent), str(staged), "10", sha, "-",
                            data=frames)  # fmt: skip
    assert status == 1 and answer is not None and answer.error == "data after the member's end"
    assert not staged.exists()


def test_import_of_a_dump_accepts_trailing_end_of_archive_zeros(tmp_path: Path) -> None:
    dump = b"SELECT 1;\n"
    frames = subprocess.run(("zstd", "-c"), input=dump + bytes(502 + 1024),
                            capture_output=True, check=True).stdout  # fmt: skip
    staged = tmp_path / "staging" / "services.dump"
    sha = hashlib.sha256(dump).hexdigest()
    status, _, answer = run("import", "stream", str(staged.parent), str(staged), "10", sha, "-",
                            data=frames)  # fmt: skip
    assert status == 0 and answer is not None and staged.read_bytes() == dump


def systemctl(tmp_path: Path, script: str) -> dict[str, str]:
    """An environment whose `systemctl` is this shell script."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "systemctl").write_text("#!/bin/sh\n" + script)
    (bin_dir / "systemctl").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_import_reports_the_states_of_the_units_it_is_given(tmp_path: Path) -> None:
    env = systemctl(tmp_path, 'shift 2\nfor u; do echo "$u-state"; done\n')
    dump = b"SELECT 1;\n"
    frames = subprocess.run(("zstd", "-c"), input=dump + bytes(502), capture_output=True,
                            check=True).stdout  # fmt: skip
    staged = tmp_path / "staging" / "services.dump"
    args = ("import", "stream", str(staged.parent), str(staged), "10",
            hashlib.sha256(dump).hexdigest(), "-")  # fmt: skip
    status, _, answer = run(*args, "a.service", "b.service", data=frames, env=env)
    assert status == 0 and answer is not None and staged.read_bytes() == dump
    assert answer.units == {"a.service": "a.service-state", "b.service": "b.service-state"}
    staged.unlink()
    status, _, answer = run(*args, data=frames, env=env)  # no units asked: none reported
    assert status == 0 and answer is not None and answer.units is None


def test_import_reports_no_states_when_systemd_left_a_unit_unsaid(tmp_path: Path) -> None:
    env = systemctl(tmp_path, "echo active\nexit 3\n")  # one state for two units
    frames = subprocess.run(("zstd", "-c"), input=bytes(512), capture_output=True,
                            check=True).stdout  # fmt: skip
    staged = tmp_path / "staging" / "services.dump"
    args = ("import", "stream", str(staged.parent), str(staged), "0",
            hashlib.sha256(b"").hexdigest(), "-", "a.service", "b.service")  # fmt: skip
    status, _, answer = run(*args, data=frames, env=env)
    assert status == 0 and answer is not None
    assert answer.units is None  # the switch asks systemd itself rather than guess


def test_import_of_corrupt_frames_fails_naming_zstd(tmp_path: Path) -> None:
    staged = tmp_path / "staging" / "services.dump"
    args = ("import", "stream", str(staged.parent), str(staged), "10", "0" * 64, "-")
    status, _, answer = run(*args, data=b"\x28\xb5\x2f\xfd garbage")
    assert status == 1 and answer is not None and answer.error.startswith("corrupt: zstd")
    assert not staged.exists()


def load_program() -> object:
    import importlib.util

    path = Path(stream.__file__).parent.parent / "remote" / stream.PROGRAM
    spec = importlib.util.spec_from_file_location("kato_node_data_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("through", ["pipes", "a file"])
def test_pass_on_copies_and_hashes_every_byte_through_tee_or_by_copy(
    tmp_path: Path, through: str
) -> None:
    """Between two pipes tee(2) is used; from a file (where tee is refused) a plain copy."""
    program: Any = load_program()
    real_tee, teed = program._tee(), []

    def counting_tee(*args: int) -> int:
        teed.append(count := real_tee(*args))
        return count  # type: ignore[no-any-return]

    program._tee = lambda: counting_tee
    data = os.urandom(3 << 20) + b"tail"
    if through == "pipes":
        feeder = subprocess.Popen(("cat",), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert feeder.stdin and feeder.stdout
        writer = threading.Thread(target=lambda: (feeder.stdin.write(data), feeder.stdin.close()))  # type: ignore[union-attr]
        writer.start()
        source = feeder.stdout.fileno()
    else:
        (tmp_path / "in").write_bytes(data)
        source = os.open(tmp_path / "in", os.O_RDONLY)
    reader = subprocess.Popen(("cat",), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert reader.stdin and reader.stdout
    out: list[bytes] = []
    collector = threading.Thread(target=lambda: out.append(reader.stdout.read()))  # type: ignore[union-attr]
    collector.start()
    size, digest = program.pass_on(source, reader.stdin.fileno())
    reader.stdin.close()
    collector.join()
    reader.wait()
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert out == [data]
    assert (sum(n for n in teed if n > 0) == len(data)) == (through == "pipes")
    if through == "pipes":
        writer.join()
        feeder.wait()


def test_import_never_stages_through_a_link_planted_at_the_staging_dir(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    staging = tmp_path / ".kato-import-run"
    staging.symlink_to(elsewhere)
    args = ("import", "stream", str(staging), str(staging / "d"), "10", "0" * 64, "-")
    status, _, answer = run(*args, data=b"")
    assert status == 1 and answer is not None
    assert "refusing to stage into it" in answer.error
    assert list(elsewhere.iterdir()) == [] and elsewhere.stat().st_mode & 0o777 == 0o755
