"""paramiko, imported once per process without the part kato does not use.

paramiko.config imports invoke, and through it unittest.mock, asyncio and more: about a third
of `import paramiko` (0.05 s of 0.13-0.17 s here), paid on every command that connects. invoke
runs only one thing there, the command of an OpenSSH config's `Match exec` line, and paramiko
handles its absence itself (it keeps the ImportError and raises it when such a line is looked
up). So kato imports paramiko with invoke blocked, unless the ssh config it is about to read
has a `Match ... exec` line: then invoke is imported as usual and the line runs as before.

Whether paramiko still imports without invoke is a unit test (tests/unit/transport/
test_ssh_library.py), and so is `Match exec`: a paramiko that stops tolerating it fails there,
not on a node. A config that gains a `Match exec` line after paramiko was loaded without invoke
(the same process reading another config) is refused by ssh_route with a clear error.
"""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path

MATCH_EXEC = re.compile(r"^\s*match\b.*(\s|!|=)exec\b", re.IGNORECASE | re.MULTILINE)
_LOADING = threading.Lock()  # connect threads all arrive here at once


def uses_match_exec(ssh_config: str | None) -> bool:
    """Whether the OpenSSH config has a `Match` line with an `exec` criterion (an unreadable
    one counts as having it: paramiko then loads as usual, and reading it fails later)."""
    if not ssh_config:
        return False
    try:
        text = Path(ssh_config).expanduser().read_text(errors="replace")
    except OSError:
        return True
    return MATCH_EXEC.search(text) is not None


def load(ssh_config: str | None) -> None:
    """Import paramiko for this process (once): without invoke unless `ssh_config` needs it."""
    with _LOADING:
        if "paramiko" in sys.modules:
            return
        if "invoke" in sys.modules or uses_match_exec(ssh_config):
            import paramiko  # noqa: F401

            return
        sys.modules["invoke"] = None  # type: ignore[assignment]  # `import invoke` fails
        try:
            import paramiko  # noqa: F401
        finally:
            if "invoke" in sys.modules and sys.modules["invoke"] is None:
                del sys.modules["invoke"]  # anything else may still import it for real
