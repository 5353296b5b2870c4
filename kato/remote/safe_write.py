"""Files written as root without following a planted link: the directory checked (no symlink
anywhere in its path, owned by root or the file's owner, writable by nobody else), the file
created new under an unpredictable name (O_CREAT|O_EXCL|O_NOFOLLOW), its mode and owner set
on the open file, fsynced, then renamed into place; a symlink or other non-file already at
the final name is refused, never written through.

One module for both sides: kato imports it on the core, and ships its source to a node's
python3 (`argv()` runs `python3 -c BOOT write MODE UID:GID|- PATH`, whose stdin is `prelude()`,
this source, then the data), or prepends it to another node program (the patch agent).
Standard library only.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
from collections.abc import Iterable

CHUNK = 1 << 20


class Unsafe(Exception):
    """Writing here would follow or replace something kato did not make: nothing was written."""


def open_dir(path: str, owners: Iterable[int] = (0,), create: int | None = None) -> int:
    """An O_DIRECTORY fd of `path`, reached component by component without following any
    symlink; every directory owned by root or one of `owners` and writable by nobody else.
    With `create` (a mode), missing directories are made (owned by root)."""
    if not path.startswith("/"):
        raise Unsafe(f"{path}: not an absolute path")
    allowed = {0, *owners}
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    walked = ""
    try:
        for part in [p for p in path.split("/") if p]:
            walked += "/" + part
            if part == "..":
                raise Unsafe(f"{path}: '..' in the path")
            try:
                info = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if create is None:
                    raise Unsafe(f"{walked}: no such directory") from None
                os.mkdir(part, create, dir_fd=fd)
                info = os.stat(part, dir_fd=fd, follow_symlinks=False)
            _check_dir(walked, info, allowed)
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
        _check_dir(walked or "/", os.fstat(fd), allowed)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _check_dir(path: str, info: os.stat_result, owners: set[int]) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise Unsafe(f"{path} is a symbolic link: refusing to write through it")
    if not stat.S_ISDIR(info.st_mode):
        raise Unsafe(f"{path} is not a directory")
    if info.st_uid not in owners:
        raise Unsafe(f"{path} is owned by uid {info.st_uid}, not by root")
    # others may write into a root-owned sticky dir (/tmp) but not replace what root made there
    sticky = info.st_mode & stat.S_ISVTX and info.st_uid == 0
    if info.st_mode & 0o022 and not sticky:
        raise Unsafe(f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o})")


def check_target(dir_fd: int, name: str, shown: str) -> None:
    """What sits at the final name may only be a regular file (which the rename replaces)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(name, dir_fd=dir_fd)
        raise Unsafe(f"{shown} is a symbolic link (to {target}): refusing to write through it")
    if not stat.S_ISREG(info.st_mode):
        raise Unsafe(f"{shown} exists and is not a regular file")


def write_file(
    path: str,
    chunks: Iterable[bytes],
    mode: int = 0o644,
    owner: tuple[int, int] | None = None,
    create_dirs: int | None = None,
    mtime_ns: int | None = None,
) -> int:
    """Write `chunks` to `path` as described above; returns the bytes written."""
    directory, name = os.path.split(path)
    if not name or name in (".", ".."):
        raise Unsafe(f"{path}: not a file name")
    dir_fd = open_dir(directory or "/", (owner[0],) if owner else (), create_dirs)
    try:
        check_target(dir_fd, name, path)
        temp = f".{name}.kato-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
        try:
            size = 0
            for chunk in chunks:
                _write_all(fd, chunk)
                size += len(chunk)
            if owner is not None and os.geteuid() == 0:
                os.fchown(fd, owner[0], owner[1])
            os.fchmod(fd, mode)
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            os.fsync(fd)
        except BaseException:
            os.unlink(temp, dir_fd=dir_fd)
            raise
        finally:
            os.close(fd)
        check_target(dir_fd, name, path)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
        return size
    finally:
        os.close(dir_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def append_line(path: str, data: bytes, mode: int = 0o640, create_dirs: int = 0o750) -> None:
    """Append to a log file (the journal) that is never a symlink, in a checked directory."""
    append_lines(path, (data,), mode, create_dirs)


def append_lines(
    path: str, lines: Iterable[bytes], mode: int = 0o640, create_dirs: int = 0o750
) -> None:
    """Append each line as it comes (the journal's open stream: a line is in the file as soon
    as it arrives, so a writer killed mid-way leaves every line it had sent), fsyncing each."""
    directory, name = os.path.split(path)
    dir_fd = open_dir(directory, (), create_dirs)
    try:
        check_target(dir_fd, name, path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, mode, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        for line in lines:
            _write_all(fd, line)
            os.fsync(fd)
    finally:
        os.close(fd)


def stdin_chunks() -> Iterable[bytes]:
    while chunk := sys.stdin.buffer.read(CHUNK):
        yield chunk


def main(argv: list[str]) -> int:
    """`write MODE UID:GID|- PATH` (stdin to PATH), `append PATH` (stdin appended at its end),
    `append-lines PATH` (each line of stdin appended as it comes) or
    `check DIR [UID...]` (the directory is safe to write into)."""
    try:
        if argv[0] == "write":
            owner = None
            if argv[2] != "-":
                uid, gid = argv[2].split(":")
                owner = (int(uid), int(gid))
            write_file(argv[3], stdin_chunks(), int(argv[1], 8), owner, create_dirs=0o755)
        elif argv[0] == "append":
            append_line(argv[1], sys.stdin.buffer.read())
        elif argv[0] == "append-lines":
            append_lines(argv[1], iter(sys.stdin.buffer.readline, b""))
        elif argv[0] == "check":
            os.close(open_dir(argv[1], [int(uid) for uid in argv[2:]]))
        else:
            raise Unsafe(f"unknown command {argv[0]!r}")
    except (Unsafe, OSError) as exc:
        sys.stderr.write(f"refused: {exc}\n")
        return 1
    return 0


def source() -> str:
    with open(__file__, encoding="utf-8") as handle:
        return handle.read()


# Reads this program from stdin (its length, a newline, the source) and runs it; the data
# follows on the same stdin. Short, so argv stays readable in plans, errors and the journal.
BOOT = (
    "import sys; n = int(sys.stdin.buffer.readline()); "
    "exec(compile(sys.stdin.buffer.read(n), 'kato-safe-write', 'exec'))"
)


def prelude() -> bytes:
    """What goes on a node command's stdin before the data: this program."""
    text = source().encode()
    return b"%d\n" % len(text) + text


def argv(path: str, mode: int = 0o600, owner: tuple[int, int] | None = None) -> tuple[str, ...]:
    """The node command that writes its stdin (after `prelude()`) to `path` this way."""
    who = f"{owner[0]}:{owner[1]}" if owner else "-"
    return ("python3", "-c", BOOT, "write", f"{mode:o}", who, path)


def check_argv(directory: str, *owners: int) -> tuple[str, ...]:
    """The node command that refuses (exit 1, naming it) a directory unsafe to write into."""
    return ("python3", "-c", BOOT, "check", directory, *map(str, owners))


def append_argv(path: str) -> tuple[str, ...]:
    """The node command that appends its stdin (after `prelude()`) to the log at `path`."""
    return ("python3", "-c", BOOT, "append", path)


def append_lines_argv(path: str) -> tuple[str, ...]:
    """The node command that appends each line of its stdin (after `prelude()`) to the log at
    `path` as the line arrives."""
    return ("python3", "-c", BOOT, "append-lines", path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
