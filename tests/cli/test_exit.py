"""How kato's process ends (kato.cli.app.main), each case in a fresh interpreter: the exit skips
the interpreter's final collections (gc.freeze) and loses nothing on the way: buffered
output, atexit handlers, logging; every documented exit code comes out as before."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kato import __version__

# Runs kato's main as the `kato` script does, after leaving a write in stdout's buffer (a pipe:
# block-buffered, no newline) and registering an atexit handler that records whether the
# objects were frozen by then, i.e. whether the exit took the fast way.
PRELUDE = """
import atexit, gc, logging, sys
from pathlib import Path
marker = Path(sys.argv[1])
sys.argv = ["kato", *sys.argv[2:]]
sys.stdout.write("left-in-the-buffer")
handler = logging.FileHandler(marker.with_suffix(".log"), delay=True)
logging.getLogger("test-exit").addHandler(handler)
atexit.register(lambda: marker.write_text(f"atexit ran, frozen={gc.get_freeze_count() > 0}"))
atexit.register(lambda: logging.getLogger("test-exit").warning("logged at exit"))
from kato.cli.app import main
main()
"""


def kato(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run kato's main with `args` in a new interpreter: (its result, what atexit recorded)."""
    marker = tmp_path / "atexit"
    marker.unlink(missing_ok=True)
    done = subprocess.run(
        (sys.executable, "-c", PRELUDE, str(marker), *args),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, marker.read_text() if marker.exists() else "atexit never ran"


def test_a_buffered_write_atexit_and_logging_survive_the_fast_exit(tmp_path: Path) -> None:
    done, recorded = kato(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"left-in-the-bufferkato {__version__}\n"  # flushed, not lost
    assert recorded == "atexit ran, frozen=True"
    assert (tmp_path / "atexit.log").read_text() == "logged at exit\n"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cluster(tmp_path: Path) -> Path:
    known = tmp_path / "known_hosts"
    known.write_text("")
    known.chmod(0o600)
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "name: exits\ncore: core1\n"
        f"ssh: {{known_hosts: {known}, connect_timeout: 5}}\n"
        f"nodes:\n  - {{name: core1, address: 127.0.0.1, port: {_closed_port()}, "
        "roles: [filesystem]}\n"
    )
    return path


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (("status", "--bogus"), 2, "No such option"),  # typer's usage error
        (("--cluster", "{tmp}/missing.yaml", "status"), 2, "missing.yaml"),  # KatoError
        (("--cluster", "{cluster}", "data", "export", "{tmp}", "--dry-run"), 5, "core1"),
        (("data", "verify", "{tmp}/garbage.tar.zst"), 6, "garbage"),
    ],
)
def test_exit_codes_are_unchanged(
    tmp_path: Path, args: tuple[str, ...], code: int, said: str
) -> None:
    (tmp_path / "garbage.tar.zst").write_bytes(b"not an archive" * 100)
    cluster = _cluster(tmp_path)
    filled = [a.format(tmp=tmp_path, cluster=cluster) for a in args]
    done, recorded = kato(tmp_path, *filled)
    assert done.returncode == code, done.stderr
    assert said in done.stderr
    assert done.stdout == "left-in-the-buffer"
    assert recorded == "atexit ran, frozen=True"


# A Ctrl-C that lands while Python imports kato's command line (the first few tenths of a
# second of every run), made certain by an import hook that raises it there.
CTRL_C_AT_IMPORT = """
import sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "kato.cli.app":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
from kato.cli.start import main
main()
"""


def test_a_ctrl_c_while_kato_loads_exits_130_without_a_traceback() -> None:
    from kato.cli.start import INTERRUPTED
    from kato.errors import ExitCode

    assert INTERRUPTED == ExitCode.INTERRUPTED
    done = subprocess.run(
        (sys.executable, "-c", CTRL_C_AT_IMPORT), capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (130, "")
