#!/usr/bin/python3
"""kato dea: the app host. Runs the sample app instance `hello-0` and keeps it running.

The instance gets its own directory in the containers data dir (its working directory, with
instance.json describing it). If the instance dies it is started again after a short back-off.
SIGTERM is passed on to the instance and the dea exits once it has; one that hangs is killed by
systemd (TimeoutStopSec, the whole cgroup). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess  # noqa: TID251 (a component on the node, not kato: no transport here)
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROLE = "dea"
APP = "hello"
INSTANCE = f"{APP}-0"
MAX_BACKOFF = 10.0
log = logging.getLogger(ROLE)


class Dea:
    def __init__(self, args: argparse.Namespace, version: str) -> None:
        self.args = args
        self.version = version
        self.instance_dir: Path = args.data_dir / INSTANCE
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None

    def app_argv(self) -> list[str]:
        app = Path(__file__).resolve().parent / "hello_app.py"
        port = str(self.args.port)
        return [
            sys.executable,
            str(app),
            "--bind",
            self.args.bind,
            "--port",
            port,
            "--version",
            self.version,
        ]

    def run(self) -> int:
        self.instance_dir.mkdir(mode=0o750, exist_ok=True)
        backoff = 1.0
        while not self.stopping:
            started = time.monotonic()
            self.child = subprocess.Popen(self.app_argv(), cwd=self.instance_dir)
            if self.stopping:  # SIGTERM came while it was being started
                self.child.terminate()
            self.describe(self.child.pid)
            status = self.child.wait()
            if self.stopping:
                break
            backoff = 1.0 if time.monotonic() - started > 30 else min(backoff * 2, MAX_BACKOFF)
            log.warning(
                "instance %s exited with %s; starting it in %.0f s", INSTANCE, status, backoff
            )
            time.sleep(backoff)
        log.info("instance %s stopped", INSTANCE)
        return 0

    def describe(self, pid: int) -> None:
        record = {
            "format": 1,
            "app": APP,
            "instance": INSTANCE,
            "pid": pid,
            "port": self.args.port,
            "version": self.version,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_atomically(self.instance_dir / "instance.json", json.dumps(record, indent=2) + "\n")
        log.info("instance %s started (pid %d, port %d)", INSTANCE, pid, self.args.port)

    def stop(self, *_: Any) -> None:
        """The signal handler: no waiting here, run() is waiting for the instance already."""
        self.stopping = True
        if self.child is not None:
            self.child.terminate()  # a no-op once it has exited


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_version(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise SystemExit(f"cannot read the platform version from {path}: {exc.strerror}") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    release_dir = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="0.0.0.0", help="address the instance listens on")
    parser.add_argument("--port", type=int, default=9000, help="the instance's port")
    parser.add_argument("--data-dir", type=Path, default=Path("/var/lib/kato/data/containers"))
    parser.add_argument("--version-file", type=Path, default=release_dir / "VERSION")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    if not args.data_dir.is_dir():
        raise SystemExit(f"the data dir {args.data_dir} does not exist (the install hook makes it)")
    dea = Dea(args, read_version(args.version_file))
    signal.signal(signal.SIGTERM, dea.stop)
    signal.signal(signal.SIGINT, dea.stop)
    log.info("platform %s, containers in %s", dea.version, args.data_dir)
    return dea.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
