"""What the upgrade fault tests share: a kato command run with pause points (it stops at each
upgrade phase until the test lets it go, so the test acts *during* a phase, never in a guessed
sleep window), the second kato that must be refused while it holds the lock, and a fingerprint
of what an upgrade may touch on every node."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

from kato.pause import file_name
from tests.integration.conftest import KATO, Cluster
from tests.integration.test_platform import STATE, on

IN_PLACE = ("staging", "staged", "exported", "stopping", "activating", "migrating", "starting")
ROLLBACK = (
    "rolling back: stopping",
    "rolling back: activating",
    "rolling back: restoring",
    "rolling back: starting",
)
# An upgrade's state on a node: releases, units, the upgrade record and the data dirs' tree.
FINGERPRINT = (
    STATE + "; cat /var/lib/kato/upgrade/state.json 2>/dev/null; "
    "find /var/lib/kato/data -xdev -path '*/postgresql' -prune -o "
    "-printf '%p %y %m %U:%G %s\\n' 2>/dev/null | LC_ALL=C sort"
)


def fingerprint(cluster: Cluster) -> dict[str, str]:
    return {
        n: hashlib.sha256(cluster.host(n).check_output(FINGERPRINT).encode()).hexdigest()
        for n in ("node1", "node2", "node3")
    }


def wait_for(condition: object, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def refused_while_held(cluster: Cluster, holder: str) -> None:
    """A second kato that changes something exits 4, naming the command holding the lock."""
    done = on(cluster, "run", "--node", "node1", "--", "true", check=False)
    assert done.returncode == 4, (done.returncode, done.stderr)
    assert f"`kato --cluster {cluster.home}/cluster.yaml {holder}" in done.stderr


class Paused:
    """`kato ARGS` run with KATO_PAUSE_DIR: it waits at each upgrade phase for `go(phase)`."""

    def __init__(self, cluster: Cluster, directory: Path, *args: str) -> None:
        directory.mkdir()
        self.directory = directory
        self.process = subprocess.Popen(
            (*KATO, "--cluster", str(cluster.home / "cluster.yaml"), *args),
            env={**os.environ, "KATO_PAUSE_DIR": str(directory)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _file(self, phase: str, kind: str) -> Path:
        return self.directory / f"{file_name('upgrade ' + phase)}.{kind}"

    def at(self, phase: str) -> None:
        """Wait until kato stands at `phase`, letting it through the phases before it (an
        assertion error if it ended first)."""
        reached = self._file(phase, "reached")

        def there() -> bool:
            for other in self.directory.glob("*.reached"):
                if other != reached:
                    other.with_suffix(".go").touch()
            return reached.exists() or self.process.poll() is not None

        wait_for(there, f"phase {phase}")
        if not reached.exists():
            raise AssertionError(f"kato ended before {phase}: {self.finish()}")

    def go(self, phase: str) -> None:
        self._file(phase, "go").touch()

    def walk(self, phases: tuple[str, ...], during: object) -> None:
        """At each phase in turn: `during()`, then let kato go on."""
        for phase in phases:
            self.at(phase)
            during()  # type: ignore[operator]
            self.go(phase)

    def release(self) -> None:
        """Let kato run to its end without stopping again."""
        (self.directory / "off").touch()
        for reached in self.directory.glob("*.reached"):
            reached.with_suffix(".go").touch()

    def finish(self, timeout: float = 900) -> tuple[int, str, str]:
        stdout, stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode, stdout, stderr

    def kill(self) -> None:
        self.process.kill()
        self.process.communicate()

    def __enter__(self) -> Paused:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.kill()
