"""Put a host mount into a running node's mount namespace (what `machinectl bind` does).

Runs as its own single-threaded process (`python -m kato.sandbox.mountns SRC PID TARGET`),
because setns() into a mount namespace is refused to a multi-threaded process. It clones the
source mount with open_tree(2), enters the node's mount namespace and attaches the clone at
TARGET with move_mount(2): Linux 5.2 or newer.
"""

from __future__ import annotations

import ctypes
import os
import sys

SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_SETNS = 428, 429, 308  # x86_64 and aarch64 share these
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC, AT_RECURSIVE = 1, 0o2000000, 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100
CLONE_NEWNS = 0x00020000


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def attach(source: str, pid: int, target: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    tree = _check(
        libc.syscall(
            SYS_OPEN_TREE,
            AT_FDCWD,
            source.encode(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
        ),
        "open_tree",
    )
    namespace = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    _check(libc.syscall(SYS_SETNS, namespace, CLONE_NEWNS), "setns")
    os.makedirs(target, exist_ok=True)
    _check(
        libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH),
        "move_mount",
    )


if __name__ == "__main__":
    attach(sys.argv[1], int(sys.argv[2]), sys.argv[3])
