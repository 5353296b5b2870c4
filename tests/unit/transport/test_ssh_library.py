"""kato/transport/ssh_library.py: paramiko loads without invoke, and an OpenSSH config's
`Match exec` still runs (invoke loaded for it) or is refused clearly. Each case runs in a fresh
interpreter: what a process imported first is the point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kato.transport.ssh_library import uses_match_exec

CONFIG = """\
Match exec "test -e {marker}"
    HostName matched.example
Host *
    HostName plain.example
"""

ROUTE = """
import sys
from kato.transport import ssh_library
from kato.transport.base import SshOptions
from kato.transport.ssh_route import route
from kato.errors import UsageError
ssh_library.load(sys.argv[1] or None)
print("invoke" in sys.modules)
config = sys.argv[2]
options = SshOptions("root", None, "/k", 5.0, 5.0, 5.0, ssh_config=config)
try:
    print(route("node1", 22, options)[-1].hostname)
except UsageError as exc:
    print("refused:", exc.message)
"""


def routed(loaded_with: str, config: Path) -> list[str]:
    done = subprocess.run(
        (sys.executable, "-c", ROUTE, loaded_with, str(config)),
        capture_output=True, text=True, check=True, cwd=Path(__file__).parents[3],
    )  # fmt: skip
    return done.stdout.splitlines()  # whether invoke was loaded, then the route or refusal


def test_paramiko_loads_without_invoke_when_no_match_exec_needs_it(tmp_path: Path) -> None:
    plain = tmp_path / "plain_config"
    plain.write_text("Host node1\n    HostName 10.0.0.1\n")
    assert routed(str(plain), plain) == ["False", "10.0.0.1"]
    after = subprocess.run(
        (sys.executable, "-c", "from kato.transport import ssh_library; "
         "ssh_library.load(None); import invoke; print(invoke.__name__)"),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert after.stdout.strip() == "invoke"  # blocked for paramiko's import only


def test_match_exec_runs_its_command_when_the_config_has_one(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    config = tmp_path / "ssh_config"
    config.write_text(CONFIG.format(marker=marker))
    assert routed(str(config), config) == ["True", "plain.example"]
    marker.touch()
    assert routed(str(config), config) == ["True", "matched.example"]


def test_a_match_exec_paramiko_cannot_run_is_refused_with_the_way_out(tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(CONFIG.format(marker=tmp_path))
    first, said = routed("", config)  # loaded for no config, then this one is read
    assert first == "False"
    assert said.startswith(f"refused: {config}: a `Match exec` line was added while kato ran")


def test_which_configs_need_invoke(tmp_path: Path) -> None:
    config = tmp_path / "c"
    for text, needs in [
        ("Host a\n  HostName b\n", False),
        ("# Match exec true\nHost a\n", False),
        ('Match host a exec "true"\n', True),
        ("  match !exec false\n", True),
        ("Match=exec true\n", True),
        ("Host exec\n  ProxyCommand exec nc %h %p\n", False),
    ]:
        config.write_text(text)
        assert uses_match_exec(str(config)) is needs, text
    assert uses_match_exec(None) is False
    assert uses_match_exec(str(tmp_path / "missing")) is True  # paramiko as usual, then the error
