"""The node side of a relocation's verification: a standalone program (standard library only)
kato runs on a node as `python3 - COMMAND ARGS...` with this file on stdin.

    compare SRC DST CACHE_DIR   the per-file checksum lists of both trees, made at once (one
                                process each), compared; prints one JSON document:
                                {"equal", "entries", "bytes", "digest", "difference"}
    copy SRC DST CACHE_DIR      copy the bytes of SRC's plain files (one name, not yet in
                                DST) into DST, hashing them on the way: the source's checksums
                                come from the copy's one read; prints {"files", "bytes",
                                "cached"}. rsync runs after it for everything else.

An entry is one line: the path (JSON-quoted), its type, mode, owner, size, mtime (files),
the sha256 of a file's bytes or a symlink's target, a digest of its extended attributes (ACLs
are xattrs) and, for the second and later names of a hard-linked file, the first name. Nothing
is followed: symlinks are entries, files are opened with O_NOFOLLOW, only regular files are
read. CACHE_DIR keeps each side's (inode, size, mtime, ctime) → sha256 between runs, so the
run after a final delta reads only what changed since the run before it (ctime moves on every
change and cannot be set back).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
# A file changed this close before it is read may change again within the same clock tick
# (of the coarsest filesystem timestamps) without its ctime moving: its checksum is not kept
# for the next run.
SETTLED_NS = 2_000_000_000
TYPES = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFIFO: "p",
         stat.S_IFSOCK: "s", stat.S_IFCHR: "c", stat.S_IFBLK: "b"}  # fmt: skip


def settled(ctime_ns: int, *, before: int) -> bool:
    """The file's last change (ctime) is SETTLED_NS older than a read that began after
    `before`: a change after that read moves its ctime, so its checksum may be kept."""
    return ctime_ns < before - SETTLED_NS


def file_sha256(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def xattr_digest(path: str) -> str:
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return "-"
    if not names:
        return "-"
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + os.getxattr(path, name, follow_symlinks=False))
    return digest.hexdigest()[:32]


def entries(top: str, cache: dict[str, list[Any]]) -> tuple[list[str], int, dict[str, list[Any]]]:
    """(sorted entry lines, bytes read or reused, the new cache) of the tree under top."""
    names: list[str] = []
    for base, dirs, files in os.walk(top, followlinks=False):
        rel = os.path.relpath(base, top)
        for name in (*dirs, *files):
            names.append(name if rel == "." else os.path.join(rel, name))
    names.sort(key=os.fsencode)
    lines = [_line(top, ".", {}, cache, {})]
    first: dict[tuple[int, int], str] = {}
    fresh: dict[str, list[Any]] = {}
    total = 0
    for rel in names:
        lines.append(_line(top, rel, first, cache, fresh))
        st = os.lstat(os.path.join(top, rel))
        total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return lines, total, fresh


def _line(
    top: str,
    rel: str,
    first: dict[tuple[int, int], str],
    cache: dict[str, list[Any]],
    fresh: dict[str, list[Any]],
) -> str:
    path = os.path.join(top, rel)
    st = os.lstat(path)
    read_at = time.time_ns()  # before any read of it
    kind = TYPES.get(stat.S_IFMT(st.st_mode), "?")
    fields = [json.dumps(os.fsencode(rel).decode("utf-8", "surrogateescape"), ensure_ascii=True),
              kind, f"{stat.S_IMODE(st.st_mode):o}", f"{st.st_uid}:{st.st_gid}"]  # fmt: skip
    key = (st.st_dev, st.st_ino)
    if kind != "d" and st.st_nlink > 1 and key in first:
        fields.append(f"={json.dumps(first[key], ensure_ascii=True)}")
        return " ".join(fields)
    if kind != "d" and st.st_nlink > 1:
        first[key] = rel
    if kind == "f":
        stamp = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        known = cache.get(rel)
        sha = known[4] if known and known[:4] == stamp else file_sha256(path)
        if settled(st.st_ctime_ns, before=read_at):
            fresh[rel] = [*stamp, sha]
        fields += [str(st.st_size), str(st.st_mtime_ns), sha]
    elif kind == "l":
        fields.append(hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest())
    elif kind in ("c", "b"):
        fields.append(f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}")
    fields.append(xattr_digest(path))
    return " ".join(fields)


def side(top: str, cache_file: Path, out_file: Path) -> None:
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    lines, total, fresh = entries(top, cache if isinstance(cache, dict) else {})
    out_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp = cache_file.with_name(cache_file.name + ".tmp")
    tmp.write_text(json.dumps(fresh), encoding="utf-8")
    os.replace(tmp, cache_file)
    (out_file.with_suffix(".bytes")).write_text(str(total), encoding="utf-8")


def compare(src: str, dst: str, cache_dir: str) -> dict[str, Any]:
    cache = Path(cache_dir)
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    children = []
    for name, top in (("src", src), ("dst", dst)):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                side(top, cache / f"{name}.cache", cache / f"{name}.list")
            except BaseException as exc:  # the child reports and exits, never returns
                (cache / f"{name}.error").write_text(f"{top}: {exc}", encoding="utf-8")
                code = 1
            os._exit(code)
        children.append(pid)
    failed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
    if failed:
        errors = [(cache / f"{n}.error") for n in ("src", "dst")]
        raise OSError("; ".join(e.read_text() for e in errors if e.exists()))
    left = (cache / "src.list").read_text(encoding="utf-8").splitlines()
    right = (cache / "dst.list").read_text(encoding="utf-8").splitlines()
    return {
        "equal": left == right,
        "entries": len(left),
        "bytes": int((cache / "src.bytes").read_text()),
        "digest": hashlib.sha256("\n".join(left).encode()).hexdigest(),
        "difference": None if left == right else first_difference(left, right),
    }


def first_difference(left: list[str], right: list[str]) -> str:
    for a, b in zip(left, right, strict=False):
        if a != b:
            return f"source has {a}; copy has {b}"
    longer, which = (left, "source") if len(left) > len(right) else (right, "copy")
    return f"only the {which} has {longer[min(len(left), len(right))]}"


def copy_files(src: str, dst: str, cache_dir: str) -> dict[str, int]:
    """Copy each regular file with one name from src to dst, keeping its mtime, and keep the
    sha256 of the bytes read in src's cache, as `compare` would have (same stamp, same settled
    rule), so the compare after the copy reads the source no more. A file already in dst, a
    hard-linked one, and everything that is not a regular file are left to rsync, which runs
    after this and finds the files copied here up to date (same size and mtime). A file that
    changed while read keeps a fresh mtime in dst, so rsync copies it again."""
    cache_file = Path(cache_dir) / "src.cache"
    Path(cache_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    done = {"files": 0, "bytes": 0, "cached": 0}
    hasher = Hasher()
    # by directory fd, never by path: a directory of the source swapped for a link while the
    # copy runs (its owner can) leads nowhere outside the source
    for base, dirs, files, dir_fd in os.fwalk(src, follow_symlinks=False):
        rel = os.path.relpath(base, src)
        into = dst if rel == "." else os.path.join(dst, rel)
        if not _plain_dir(into):
            dirs[:] = []  # a link or a file where a directory goes: rsync decides what to do
            continue
        for name in files:
            key = name if rel == "." else os.path.join(rel, name)
            read_at = time.time_ns()
            entry = _copy_one(dir_fd, name, os.path.join(base, name), os.path.join(into, name),
                              hasher)  # fmt: skip
            if entry is None:
                continue
            done["files"] += 1
            done["bytes"] += entry[1]
            if settled(entry[3], before=read_at):
                cache[key] = entry
                done["cached"] += 1
    tmp = cache_file.with_name(cache_file.name + ".tmp")
    tmp.write_text(json.dumps(cache), encoding="utf-8")
    os.replace(tmp, cache_file)
    return done


class Hasher:
    """sha256 in a second thread, so that hashing a chunk overlaps reading and writing the next
    (hashlib and the file calls release the GIL): the copy pass uses both cores, as rsync's
    sender and receiver do. At most QUEUED chunks wait, so memory stays bounded."""

    QUEUED = 8

    def __init__(self) -> None:
        self.chunks: queue.Queue[tuple[Any, bytes]] = queue.Queue(maxsize=self.QUEUED)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            digest, chunk = self.chunks.get()
            digest.update(chunk)
            self.chunks.task_done()

    def update(self, digest: Any, chunk: bytes) -> None:
        self.chunks.put((digest, chunk))

    def wait(self) -> None:
        """Until every chunk handed over so far is hashed."""
        self.chunks.join()


def _plain_dir(path: str) -> bool:
    """path is a directory (made, 0700, when missing: rsync sets its mode and owner)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    return stat.S_ISDIR(os.lstat(path).st_mode)


def _copy_one(dir_fd: int, name: str, source: str, target: str, hasher: Hasher) -> list[Any] | None:
    """[inode, size, mtime, ctime, sha256] of the copied source file (`name` in the directory
    open as `dir_fd`; `source` is its path, for errors), or None: not copied."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):  # never opened: a device, a fifo
            return None
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:  # vanished, or swapped for a link meanwhile: rsync's part
        return None
    with os.fdopen(fd, "rb") as reading:
        st = os.fstat(fd)
        stamp = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return None
        try:
            out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return None
        digest = hashlib.sha256()
        try:
            while chunk := reading.read(CHUNK):
                hasher.update(digest, chunk)
                if chunk.count(0) == len(chunk):  # a hole, as rsync --sparse leaves it
                    os.lseek(out, len(chunk), os.SEEK_CUR)
                    continue
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
            os.ftruncate(out, os.lseek(out, 0, os.SEEK_CUR))
            after = os.fstat(fd)
            if stamp != [after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns]:
                return None  # changed while read: a fresh mtime here, so rsync copies it again
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        except OSError as exc:
            raise OSError(f"copying {source}: {exc.strerror} ({exc.errno})") from None
        finally:
            os.close(out)
    hasher.wait()
    return [*stamp, digest.hexdigest()]


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] not in ("compare", "copy"):
        print("usage: treesum compare|copy SRC DST CACHE_DIR", file=sys.stderr)
        return 2
    for top in argv[1:3] if argv[0] == "compare" else argv[1:2]:
        if os.path.islink(top) or not os.path.isdir(top):
            print(f"treesum: {top} is not a directory", file=sys.stderr)
            return 1
    try:
        run = compare if argv[0] == "compare" else copy_files
        result = run(argv[1], argv[2], argv[3])
    except OSError as exc:  # as rsync says it: "No space left on device (28)"
        said = f"{exc.filename}: {exc.strerror} ({exc.errno})" if exc.errno else str(exc)
        print(f"treesum: {said}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
