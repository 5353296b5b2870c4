"""Where the `kato` program starts: its console script, `python -m kato` and the sandbox
nodes' wrapper all call `main` here, so a Ctrl-C while Python still loads kato's modules (a
few tenths of a second) exits 130 as one during a command does, not with a traceback."""

from __future__ import annotations

import os

# kato.errors.ExitCode.INTERRUPTED, written out: a Ctrl-C may come while that module loads
INTERRUPTED = 130


def main() -> None:
    try:
        from kato.cli import app
    except KeyboardInterrupt:
        os._exit(INTERRUPTED)  # nothing was asked of any node yet; nothing to flush or undo
    app.main()
