"""The cluster file refuses what cannot work: non-finite numbers, impossible addresses, names
with a trailing newline, duplicate keys; a YAML error names the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kato import config, yamldoc
from kato.errors import UsageError

FILE = """\
name: prod
core: core1
ssh:
  command_timeout: {timeout}
nodes:
  - name: {name}
    address: {address}
    roles: [controller]
"""


def problems(tmp_path: Path, **fields: str) -> str:
    values = {"timeout": "60", "name": "core1", "address": "10.0.0.1", **fields}
    path = tmp_path / "cluster.yaml"
    path.write_text(FILE.format(**values))
    with pytest.raises(UsageError) as caught:
        config.load(str(path), {})
    return caught.value.message


@pytest.mark.parametrize("timeout", [".nan", ".inf", "-.inf", "0", "-5", "1e300", "true", "'60'"])
def test_timeouts_must_be_finite_positive_seconds(tmp_path: Path, timeout: str) -> None:
    assert "ssh.command_timeout: must be a number of seconds above 0" in problems(
        tmp_path, timeout=timeout
    )


@pytest.mark.parametrize(
    "address",
    ["999.1.1.1", "1.2.3", "256.0.0.1", "-lead.example", "trail-.example", "a..b", "a b",
     "1.2.3.4.5", "x" * 64 + ".example", "'fe80::zz'"],
)  # fmt: skip
def test_impossible_addresses_are_refused(tmp_path: Path, address: str) -> None:
    assert "nodes[0].address:" in problems(tmp_path, address=address)


@pytest.mark.parametrize(
    "address", ["10.0.0.1", "'::1'", "'fe80::1'", "db-1.example.org", "node1", "node1.example."]
)
def test_real_addresses_and_host_names_are_accepted(tmp_path: Path, address: str) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(FILE.format(timeout="60", name="core1", address=address))
    assert config.load(str(path), {}).core_node.address == address.strip("'")


def test_a_name_ending_in_a_newline_is_refused(tmp_path: Path) -> None:
    message = problems(tmp_path, name='"core1\\n"')
    assert "nodes[0].name: 'core1\\n' contains a control character" in message


def test_no_string_may_carry_a_control_character() -> None:
    raw = {
        "name": "prod",
        "core": "a",
        "ssh": {"known_hosts": "/etc/kato/known_hosts\n"},
        "nodes": [{"name": "a", "address": "10.0.0.1\n", "roles": []}],
    }
    with pytest.raises(UsageError) as caught:
        config.parse(raw, "c.yaml")
    assert "ssh.known_hosts" in caught.value.message
    assert "nodes[0].address" in caught.value.message


def test_a_duplicate_key_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(FILE.format(timeout="60", name="core1", address="10.0.0.1") + "name: other\n")
    with pytest.raises(UsageError) as caught:
        config.load(str(path), {})
    assert caught.value.message == (
        f"{path}: not valid YAML: line 9, column 1: the key 'name' is given twice (first on line 1)"
    )


def test_a_duplicate_key_in_a_node_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(FILE.format(timeout="60", name="core1", address="10.0.0.1\n    address: x"))
    with pytest.raises(UsageError, match="line 8, column 5: the key 'address' is given twice"):
        config.load(str(path), {})


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("name: prod\nnodes:\n  - name: [a\n  - b: c\n")
    with pytest.raises(UsageError) as caught:
        config.load(str(path), {})
    assert caught.value.message.startswith(f"{path}: not valid YAML: line 4, column ")


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e400"])
def test_environment_timeouts_must_be_finite(value: str) -> None:
    cluster = config.parse(
        {"name": "p", "core": "a", "nodes": [{"name": "a", "address": "10.0.0.1"}]}, "c"
    )
    with pytest.raises(UsageError, match="KATO_CONNECT_TIMEOUT"):
        config.apply_env(cluster, {"KATO_CONNECT_TIMEOUT": value})


def test_yamldoc_keeps_merge_keys_and_ordinary_documents() -> None:
    assert yamldoc.load("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n") == {
        "base": {"x": 1},
        "other": {"x": 1, "y": 2},
    }


def test_yamldoc_marks_the_line_of_every_key_and_item_aliases_and_merges_included() -> None:
    text = "base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\nlist:\n  - a\n  - {k: *b}\n"
    document, lines = yamldoc.load_marked(text)
    assert document["other"] == {"x": 1, "y": 2}
    assert lines == {
        "base": 1, "base.x": 1, "other": 2, "other.x": 1, "other.y": 4,
        "list": 5, "list[0]": 6, "list[1]": 7, "list[1].k": 7,
    }  # fmt: skip
    # a merged key is where it is written (x: line 1); a missing key on its holder's line
    assert yamldoc.line_of("other.z", lines) == 2
    assert yamldoc.line_of("list[1].k.x", lines) == 7
    assert yamldoc.line_of("core", lines) is None


def test_a_problem_in_a_file_names_its_line_a_parsed_dict_has_none(tmp_path: Path) -> None:
    assert "cluster.yaml:4: ssh.command_timeout: must be" in problems(tmp_path, timeout="0")
    with pytest.raises(UsageError) as caught:
        config.parse({"name": "p", "core": "a", "nodes": [{"name": "a"}]}, "c.yaml")
    assert "c.yaml: nodes[0].address: required" in caught.value.message
