"""A node program of kato/remote run as kato runs it (`python3 - ARGS`, its text on stdin),
here on a temporary directory standing for the node's root: what the programs' tests share."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kato.remote

REMOTE = Path(kato.remote.__file__).resolve().parent


def run(program: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """kato/remote/PROGRAM with these arguments (the first is the node's root, for most)."""
    return subprocess.run(
        (sys.executable, "-", *map(str, args)),
        input=(REMOTE / program).read_text(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def answer(program: str, *args: str | Path) -> dict[str, object]:
    """The JSON document the program prints; it must succeed."""
    done = run(program, *args)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def facts(bundle: Path, root: Path, request: dict[str, object]) -> dict[str, object]:
    """node_facts.py as the agent runs it from its unpacked bundle, for the node at root."""
    done = subprocess.run(
        (sys.executable, str(bundle / "node_facts.py"), json.dumps(request), str(root)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found
