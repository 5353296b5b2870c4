"""kato/remote/node_facts.py run locally on a temporary node tree, as the agent ships it."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.remote.programs import facts


@pytest.fixture
def root(tmp_path: Path) -> Path:
    node = tmp_path / "node"
    releases = node / "var/lib/kato/releases"
    (releases / "1.0.0/router").mkdir(parents=True)
    (releases / "current").symlink_to("1.0.0")
    (node / "proc/sys/kernel/random").mkdir(parents=True)
    (node / "proc/sys/kernel/random/boot_id").write_text("b00t\n")
    (node / "srv/data/sub").mkdir(parents=True)
    (node / "srv/data/sub/f").write_bytes(b"x" * 10000)
    (node / "srv/data/link").hardlink_to(node / "srv/data/sub/f")
    (node / "run/kato").mkdir(parents=True)
    (node / "run/kato/lock").write_text(json.dumps({"id": "abc", "heartbeat": 1, "ttl": 60}))
    return node


@pytest.fixture
def web() -> Iterator[str]:
    """http://127.0.0.1:PORT/ok answers 200, /bad 503."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_one_document_with_version_boot_id_space_sizes_and_the_lock(
    bundle: Path, root: Path
) -> None:
    found = facts(
        bundle,
        root,
        {"space": ["/srv/data", "/srv/none/deeper"], "sizes": ["/srv/data", "/nope"], "lock": True},
    )
    assert (found["format"], found["version"], found["boot_id"]) == (1, "1.0.0", "b00t")
    space = found["space"]
    assert isinstance(space, dict)
    assert space["/srv/data"]["exists"] is True and space["/srv/data"]["free"] > 0
    assert space["/srv/none/deeper"]["exists"] is False  # its nearest parent's filesystem
    sizes = found["sizes"]
    assert isinstance(sizes, dict)
    assert 10000 <= sizes["/srv/data"] < 10000 + 64 * 1024 and sizes["/nope"] is None
    assert found["lock"]["record"]["id"] == "abc"  # type: ignore[index]


def test_health_of_http_tcp_and_command_checks(bundle: Path, root: Path, web: str) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        roles = {
            "good": {"units": [], "health": {"timeout": 2, "http": f"{web}/ok"}},
            "bad": {"units": [], "health": {"timeout": 2, "http": f"{web}/bad"}},
            "tcp": {"units": [], "health": {"timeout": 2, "tcp": ["127.0.0.1", port]}},
            "cmd": {
                "units": [],
                "health": {"timeout": 2, "command": ["sh", "-c", "echo no >&2; exit 4"]},
            },
        }
        found = facts(bundle, root, {"roles": roles})
    assert found["health"] == {
        "good": None,
        "bad": f"HTTP 503 from {web}/bad",
        "tcp": None,
        "cmd": "no",
    }


def test_no_version_without_a_current_release(bundle: Path, root: Path) -> None:
    (root / "var/lib/kato/releases/current").unlink()
    assert facts(bundle, root, {})["version"] is None


def test_the_role_definitions_are_those_of_the_current_release(bundle: Path, root: Path) -> None:
    releases = root / "var/lib/kato/releases"
    (releases / "1.0.0/router/role.yaml").write_text("name: router  # 1.0.0\n")
    (releases / "1.0.0/dea").mkdir()  # a role dir without role.yaml: none for it
    (releases / "1.1.0/router").mkdir(parents=True)
    (releases / "1.1.0/router/role.yaml").write_text("name: router  # 1.1.0\n")
    assert facts(bundle, root, {"definitions": True})["definitions"] == {
        "router": "name: router  # 1.0.0\n"
    }
    assert "definitions" not in facts(bundle, root, {})
    (releases / "current").unlink()
    assert facts(bundle, root, {"definitions": True})["definitions"] == {}


def test_the_patch_state_comes_from_the_patch_agent_beside_it(bundle: Path, root: Path) -> None:
    (root / "var/lib/kato/patches/half").mkdir(parents=True)
    found = facts(bundle, root, {"patches": {}})
    assert found["patches"] == {"version": "1.0.0", "records": {}, "interrupted": ["half"]}


def test_data_dirs_measured_where_they_live_in_the_same_call(bundle: Path, root: Path) -> None:
    """An export's preparation: the foreseen paths and, through the record, the moved ones."""
    (root / "mnt/ebs/moved").mkdir(parents=True)
    (root / "mnt/ebs/moved/f").write_bytes(b"y" * 300)
    (root / "mnt/ebs/moved").chmod(0o2750)
    record = {
        "format": 1,
        "data_dirs": {
            "filesystem": {"droplets": {"path": "/mnt/ebs/moved", "declared": "/srv/gone"}},
            "dea": {"containers": {"path": "/mnt/other", "declared": "/srv/c"}},
        },
    }
    (root / "var/lib/kato/datadirs.yaml").write_text(json.dumps(record))
    found = facts(
        bundle,
        root,
        {
            "datadirs": True,
            "dirs": ["/srv/data", "/srv/gone"],
            "dirs_of": {"filesystem": ["droplets"]},
            "moved_parents": True,
        },
    )
    dirs = found["dirs"]
    assert isinstance(dirs, dict)
    assert set(dirs) == {"/srv/data", "/srv/gone", "/mnt/ebs/moved"}  # not dea's: not asked
    assert dirs["/srv/gone"] is None
    assert dirs["/srv/data"]["dir"] is True and dirs["/srv/data"]["size"] >= 10000
    moved = dirs["/mnt/ebs/moved"]
    moved_stat = (root / "mnt/ebs/moved").stat()
    assert moved["mode"] == "02750" and moved["size"] >= 300
    assert moved["owner"] == f"{(root / 'mnt/ebs/moved').stat().st_uid}:{moved_stat.st_gid}"
    space = found["space"]
    assert isinstance(space, dict) and {"/mnt/ebs/moved", "/mnt/ebs", "/mnt"} <= set(space)
    assert "dirs" not in facts(bundle, root, {"datadirs": True})
