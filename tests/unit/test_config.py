"""The cluster file is validated whole: every problem with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from kato import config
from kato.errors import UsageError

GOOD = {
    "name": "prod",
    "core": "core1",
    "ssh": {"user": "kato", "known_hosts": "/etc/kato/known_hosts", "parallel": 20},
    "nodes": [
        {"name": "core1", "address": "10.0.0.1", "roles": ["controller"]},
        {"name": "router1", "address": "router1.example.org", "port": 2222, "roles": ["router"]},
    ],
}


def test_a_good_file_parses_with_defaults() -> None:
    cluster = config.parse(GOOD, "c.yaml")
    assert cluster.core_node.address == "10.0.0.1"
    assert cluster.node("router1").port == 2222
    assert cluster.node("core1").port == 22
    assert cluster.ssh.parallel == 20 and cluster.ssh.connect_timeout == 5.0
    assert [n.name for n in cluster.with_role("router")] == ["router1"]


def test_every_problem_is_listed_with_its_path() -> None:
    bad = {
        "name": "prod",
        "core": "nowhere",
        "colour": "blue",
        "ssh": {"parallel": 0, "connect_timeout": -1, "user": "root; rm -rf /"},
        "nodes": [
            {"name": "a", "address": "10.0.0.1", "roles": ["router"]},
            {"name": "a", "address": "$(touch /tmp/x)", "roles": "router"},
            {"name": "Bad Name", "roles": []},
            "just a string",
        ],
    }
    with pytest.raises(UsageError) as caught:
        config.parse(bad, "c.yaml")
    message = caught.value.message
    for expected in (
        "c.yaml: colour: unknown key",
        "c.yaml: ssh.parallel: must be a whole number from 1 to 256",
        "c.yaml: ssh.connect_timeout: must be a number of seconds above 0",
        "c.yaml: ssh.user: 'root; rm -rf /' is not allowed",
        "c.yaml: nodes[1].name: 'a' is used by another node",
        "c.yaml: nodes[1].address: '$(touch /tmp/x)' is not an IP address or host name",
        "c.yaml: nodes[1].roles: must be a list of role names",
        "c.yaml: nodes[2].name: 'Bad Name' is not allowed",
        "c.yaml: nodes[2].address: required",
        "c.yaml: nodes[3]: must be a mapping",
        "c.yaml: core: names 'nowhere', which is not one of the nodes",
    ):
        assert expected in message, expected
    assert message.startswith("the cluster file has 11 problem(s)")


def test_not_a_mapping() -> None:
    with pytest.raises(UsageError, match="must be a mapping"):
        config.parse(["a"], "c.yaml")


def test_found_by_flag_then_environment_then_default() -> None:
    assert config.find_path("x.yaml", {"KATO_CLUSTER": "y.yaml"}) == Path("x.yaml")
    assert config.find_path(None, {"KATO_CLUSTER": "y.yaml"}) == Path("y.yaml")
    assert config.find_path(None, {}) == config.DEFAULT_PATH


def test_environment_beats_the_file_and_flags_beat_both(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    cluster = config.load(str(path), {"KATO_PARALLEL": "7", "KATO_SSH_USER": "ops"})
    assert cluster.ssh.parallel == 7 and cluster.ssh.user == "ops"
    assert config.with_parallel(cluster, 3).ssh.parallel == 3
    with pytest.raises(UsageError, match="KATO_PARALLEL"):
        config.load(str(path), {"KATO_PARALLEL": "many"})


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no cluster file at"):
        config.load(str(tmp_path / "absent.yaml"), {})
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        config.load(str(broken), {})


def test_environment_overrides_are_checked_like_the_file(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    for bad in (
        {"KATO_PARALLEL": "0"},
        {"KATO_CONNECT_TIMEOUT": "-1"},
        {"KATO_SSH_USER": "root; id"},
    ):
        with pytest.raises(UsageError):
            config.load(str(path), bad)


def test_login_settings_name_where_secrets_are_and_nodes_may_log_in_their_own_way() -> None:
    cluster = config.parse(
        {
            "name": "prod",
            "core": "a",
            "ssh": {"config": "~/.ssh/config", "agent": True, "passphrase_env": "KEY_PW",
                    "sudo_password_file": "/etc/kato/sudo", "keepalive": 20, "user": "ops"},
            "nodes": [
                {"name": "a", "address": "10.0.0.1", "roles": ["router"], "user": "admin",
                 "identity_file": "/k/a"},
                {"name": "b", "address": "10.0.0.2", "roles": ["router"]},
            ],
        },
        "c.yaml",
    )  # fmt: skip
    assert (cluster.ssh.config, cluster.ssh.agent, cluster.ssh.keepalive) == (
        "~/.ssh/config", True, 20.0
    )  # fmt: skip
    assert cluster.ssh.given == {"user"}
    a, b = cluster.nodes
    assert (a.user, a.identity_file, a.given) == (
        "admin",
        "/k/a",
        frozenset({"user", "identity_file"}),
    )
    assert (b.user, b.given) == (None, frozenset())


@pytest.mark.parametrize(("given", "taken"), [(0, 0.0), (1, 1.0), (-1, None), (True, None)])
def test_keepalive_zero_switches_it_off_and_below_is_refused(
    given: object, taken: float | None
) -> None:
    raw = {"name": "p", "core": "a", "ssh": {"keepalive": given},
           "nodes": [{"name": "a", "address": "10.0.0.1", "roles": ["router"]}]}  # fmt: skip
    if taken is None:
        with pytest.raises(UsageError, match="ssh.keepalive"):
            config.parse(raw, "c.yaml")
    else:
        assert config.parse(raw, "c.yaml").ssh.keepalive == taken


def test_bad_login_settings_are_each_named() -> None:
    with pytest.raises(UsageError) as caught:
        config.parse(
            {
                "name": "prod",
                "core": "a",
                "ssh": {"agent": "yes", "passphrase_env": "not a name",
                        "sudo_password_file": "/x", "sudo_password_env": "PW"},
                "nodes": [{"name": "a", "address": "10.0.0.1", "user": "Bad User"}],
            },
            "c.yaml",
        )  # fmt: skip
    text = str(caught.value)
    for where in ("ssh.agent", "ssh.passphrase_env", "ssh.sudo_password_env", "nodes[0].user"):
        assert where in text


def test_the_load_balancer_hooks_parse_and_every_problem_is_named() -> None:
    good = {
        **GOOD,
        "load_balancer": {"node": "core1", "drain": ["lb", "drain", "{router}"], "undrain": ["lb"]},
    }
    balancer = config.parse(good, "c.yaml").load_balancer
    assert balancer == config.LoadBalancer("core1", ("lb", "drain", "{router}"), ("lb",), 60.0)
    assert config.parse(GOOD, "c.yaml").load_balancer is None
    bad = {**GOOD, "load_balancer": {"node": "lb9", "drain": "lb drain", "timeout": 0, "x": 1}}
    with pytest.raises(UsageError) as caught:
        config.parse(bad, "c.yaml")
    for problem in (
        "c.yaml: load_balancer.x: unknown key",
        "c.yaml: load_balancer.node: names 'lb9', which is not one of the nodes",
        "c.yaml: load_balancer.drain: required: a command as a list of strings",
        "c.yaml: load_balancer.undrain: required: a command as a list of strings",
        "c.yaml: load_balancer.timeout: must be a number of seconds above 0",
    ):
        assert problem in caught.value.message
