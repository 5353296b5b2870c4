"""The way to a node through an OpenSSH config: what the cluster file says beats the config,
the config beats kato's defaults, ProxyJump becomes jump hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kato.errors import UsageError
from kato.transport.base import SshOptions
from kato.transport.ssh_route import Hop, route

CONFIG = """\
Host web1
    HostName 10.0.0.21
    Port 2222
    User deploy
    IdentityFile ~/.ssh/web_key
    ProxyJump ops@bastion:2200
Host web2
    HostName 10.0.0.22
    ProxyJump bastion,inner
Host bastion
    HostName 203.0.113.5
    IdentityFile /etc/kato/bastion_key
Host inner
    HostName 10.0.0.2
"""


def options(tmp_path: Path, **changes: object) -> SshOptions:
    config = tmp_path / "ssh_config"
    config.write_text(CONFIG)
    base = {
        "user": "root", "identity_file": "/etc/kato/id", "known_hosts": "/k",
        "connect_timeout": 5.0, "auth_timeout": 5.0, "command_timeout": 5.0,
        "ssh_config": str(config), "jump_user": "root", "jump_identity_file": "/etc/kato/id",
    }  # fmt: skip
    return SshOptions(**{**base, **changes})  # type: ignore[arg-type]


def test_without_a_config_the_route_is_the_cluster_file_alone(tmp_path: Path) -> None:
    plain = options(tmp_path, ssh_config=None)
    assert route("web1", 22, plain) == (Hop("web1", "web1", 22, "root", ("/etc/kato/id",)),)


def test_the_config_fills_in_what_the_cluster_file_leaves_out(tmp_path: Path) -> None:
    bastion, web1 = route("web1", 22, options(tmp_path))
    assert web1 == Hop("web1", "10.0.0.21", 2222, "deploy", (str(Path.home() / ".ssh/web_key"),))
    assert bastion == Hop(
        "ops@bastion:2200", "203.0.113.5", 2200, "ops", ("/etc/kato/bastion_key",)
    )
    assert bastion.known_hosts_name == "[203.0.113.5]:2200"


def test_what_the_cluster_file_spells_out_beats_the_config(tmp_path: Path) -> None:
    given = frozenset({"user", "identity_file", "port"})
    *_, web1 = route("web1", 22, options(tmp_path, user="admin", given=given))
    assert (web1.hostname, web1.port, web1.user, web1.identity_files) == (
        "10.0.0.21", 22, "admin", ("/etc/kato/id",)
    )  # fmt: skip


def test_a_chain_of_jump_hosts_in_order(tmp_path: Path) -> None:
    hops = route("web2", 22, options(tmp_path))
    assert [h.hostname for h in hops] == ["203.0.113.5", "10.0.0.2", "10.0.0.22"]
    assert hops[1] == Hop("inner", "10.0.0.2", 22, "root", ("/etc/kato/id",))


def test_a_missing_config_or_bad_jump_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the ssh config"):
        route("web1", 22, options(tmp_path, ssh_config=str(tmp_path / "nope")))
    bad = tmp_path / "bad"
    bad.write_text("Host x\n    ProxyJump ssh://a b\n")
    with pytest.raises(UsageError, match="not \\[user@\\]host"):
        route("x", 22, options(tmp_path, ssh_config=str(bad)))
