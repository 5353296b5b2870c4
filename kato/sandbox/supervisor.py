"""The per-node supervisor: runs systemd-nspawn and boots it again when the node reboots itself.

Started detached by `kato sandbox up/start` as `python -m kato.sandbox.supervisor NAME NODE`.
SIGTERM powers the node off cleanly (systemd-nspawn forwards it to the node's init).
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType

from kato.sandbox import cgroups, model
from kato.sandbox.node import REBOOT_STATUS, nspawn_argv
from kato.transport import local


def main(argv: list[str]) -> int:
    name, node_name = argv
    sandbox = model.require(name)
    node = sandbox.node(node_name)
    directory = sandbox.node_dir(node)
    stopping = False
    child = None

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    cgroups.enter(node.machine(sandbox.name))
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with (directory / "console.log").open("ab") as log:
        while not stopping:
            sandbox = model.require(name)  # disks attached since the last boot are bound too
            child = local.start(nspawn_argv(sandbox, node), log=log)
            status = child.wait()
            with (directory / "exits.log").open("a") as exits:
                exits.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {status}\n")
            if status != REBOOT_STATUS:
                return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
