"""The manifest: encoded to exactly its slot, decoded trusting nothing."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from kato.data.manifest import (
    FORMAT,
    MAX_MEMBERS,
    NAME,
    SLOT,
    Manifest,
    ManifestProblem,
    Member,
    _checksum,
    decode,
    member_name,
)
from tests.unit.data.build import CREATED, Content, manifest_of

MEMBERS = (
    Content(
        "core1",
        "postgresql",
        "services",
        "stream",
        b"dump",
        "/var/lib/kato/data/services/postgresql",
    ).member(),  # fmt: skip
    Content(
        "core1", "controller", "controller", "tree", b"tar", "/var/lib/kato/data/controller"
    ).member(),  # fmt: skip
)


def many(count: int, path: str = "/var/lib/kato/data/services/redis") -> tuple[Member, ...]:
    return tuple(
        Content(f"node{i}", "redis", "services", "stream", b"", path).member() for i in range(count)
    )


def test_the_name_and_format() -> None:
    assert (NAME, FORMAT) == ("MANIFEST.json", 2)


def test_format_1_still_reads_and_format_2_needs_each_member_s_entries() -> None:
    members = tuple(dataclasses.replace(m, entries=None) for m in MEMBERS)
    old = Manifest(1, "prod", None, "0.1.0", CREATED, members)
    assert b'"entries"' not in old.encode() and decode(old.encode()) == old
    with pytest.raises(ManifestProblem, match=r"members\[0\]: entries missing"):
        decode(Manifest(2, "prod", None, "0.1.0", CREATED, members).encode())
    stream = next(m for m in MEMBERS if m.type == "stream")
    with pytest.raises(ManifestProblem, match="entries 3 for a stream"):
        decode(manifest_of([dataclasses.replace(stream, entries=3)]).encode())


def test_member_names() -> None:
    assert member_name("core1", "controller", "controller", "tree") == (
        "data/core1/controller/controller.tar"
    )
    assert member_name("db-2", "postgresql", "services", "stream") == (
        "data/db-2/postgresql/services.dump"
    )


@pytest.mark.parametrize("version", [None, "1.2.3"])
@pytest.mark.parametrize("members", [(), MEMBERS, many(MAX_MEMBERS)], ids=["0", "2", "max"])
def test_encode_then_decode_gives_the_same_manifest(
    version: str | None, members: tuple[Member, ...]
) -> None:
    manifest = Manifest(FORMAT, "prod", version, "0.1.0", CREATED, members)
    body = manifest.encode()
    assert len(body) == SLOT
    assert decode(body) == manifest


def test_encode_is_sorted_json_padded_with_spaces() -> None:
    body = manifest_of(MEMBERS).encode()
    text = body.rstrip(b" ")
    assert body == text + b" " * (SLOT - len(text))
    raw = json.loads(text)
    assert list(raw) == sorted(raw)
    assert raw["members"][0]["name"] == "data/core1/postgresql/services.dump"
    assert raw["members"][0]["size"] == 4


def test_lookup_by_member_name() -> None:
    manifest = manifest_of(MEMBERS)
    assert manifest.member("data/core1/controller/controller.tar") == MEMBERS[1]
    assert manifest.member("data/core1/controller/controller.dump") is None


def test_a_manifest_larger_than_its_slot_is_refused() -> None:
    manifest = manifest_of(many(300, path="/srv/" + "p" * 800))
    with pytest.raises(
        ManifestProblem, match=rf"more than the {SLOT} reserved for it \(300 members\)"
    ):
        manifest.encode()


def test_encode_refuses_what_decode_refuses() -> None:
    with pytest.raises(ManifestProblem):
        manifest_of(many(MAX_MEMBERS + 1)).encode()


def good_raw() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(manifest_of(MEMBERS).encode())
    return raw


def test_too_many_members_are_refused() -> None:
    raw = good_raw()
    raw["members"] = [raw["members"][0]] * (MAX_MEMBERS + 1)
    with pytest.raises(ManifestProblem, match=f"513 is more than the limit {MAX_MEMBERS}"):
        decode(json.dumps(raw).encode())


def set_path(raw: dict[str, Any], path: str, value: object) -> None:
    """`members.0.owner` = value; a value of DELETE removes the key."""
    *parents, last = path.split(".")
    where: Any = raw
    for part in parents:
        where = where[int(part)] if isinstance(where, list) else where[part]
    key: int | str = int(last) if isinstance(where, list) else last
    if value is DELETE:
        del where[key]
    else:
        where[key] = value


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("format", 3, "format 3 is newer than this kato understands (format 2): upgrade kato"),
        ("format", 0, "format: 0 is not a known format"),
        ("format", "1", "format: missing or not a number"),
        ("format", True, "format: missing or not a number"),
        ("format", DELETE, "format: missing or not a number"),
        ("cluster", "", "manifest: cluster missing or not text"),
        ("kato_version", 1, "manifest: kato_version missing or not text"),
        ("created", DELETE, "manifest: created missing or not text"),
        ("platform_version", 1, "platform_version: must be text or null"),
        ("members", {}, "members: missing or not a list"),
        ("members.1", "x", "members[1]: not an object"),
        ("members.0.node", "core/1", "members[0]: node 'core/1' is not a plain name"),
        ("members.0.node", "Core1", "members[0]: node 'Core1' is not a plain name"),
        ("members.0.node", "..", "members[0]: node '..' is not a plain name"),
        ("members.0.role", "post gres", "members[0]: role 'post gres' is not a plain name"),
        ("members.0.data_dir", "a/b", "members[0]: data_dir 'a/b' is not a plain name"),
        ("members.0.data_dir", "x" * 64, "is not a plain name"),
        ("members.0.name", DELETE, "members[0]: name missing or not text"),
        (
            "members.0.name",
            "data/core1/postgresql/services.tar",
            "members[0]: name 'data/core1/postgresql/services.tar' should be "
            "'data/core1/postgresql/services.dump'",
        ),
        ("members.0.name", "../../etc/passwd", "should be 'data/core1/postgresql"),
        ("members.0.type", "tree", "members[0]: name 'data/core1/postgresql/services.dump' should"),
        ("members.0.type", "dir", "members[0]: type 'dir' is not one of tree, stream"),
        ("members.0.type", None, "members[0]: type None is not one of tree, stream"),
        ("members.0.path", "var/lib/x", "members[0]: path 'var/lib/x' is not a clean absolute"),
        ("members.0.path", "/var/../etc", "path '/var/../etc' is not a clean absolute path"),
        ("members.0.path", "/var/lib/..", "path '/var/lib/..' is not a clean absolute path"),
        ("members.0.size", -1, "members[0]: size missing or not a whole number"),
        ("members.0.size", 1.5, "members[0]: size missing or not a whole number"),
        ("members.0.size", True, "members[0]: size missing or not a whole number"),
        ("members.0.size", "4", "members[0]: size missing or not a whole number"),
        ("members.0.mode", "755", "members[0]: mode '755' is not an octal mode like '0755'"),
        ("members.0.mode", "0789", "mode '0789' is not an octal mode"),
        ("members.0.mode", "0755; rm -rf /", "is not an octal mode"),
        ("members.0.mode", 493, "mode 493 is not an octal mode"),
        ("members.0.owner", "postgres:postgres", "owner 'postgres:postgres' is not numeric"),
        ("members.0.owner", "105", "members[0]: owner '105' is not numeric 'uid:gid'"),
        ("members.0.owner", "-1:0", "is not numeric 'uid:gid'"),
        ("members.0.owner", "0:0\n", "is not numeric 'uid:gid'"),
        ("members.0.sha256", "A" * 64, "members[0]: sha256 missing or not 64 hex digits"),
        ("members.0.sha256", "a" * 63, "sha256 missing or not 64 hex digits"),
        ("members.0.sha256", DELETE, "sha256 missing or not 64 hex digits"),
        ("members.1.name", "data/core1/postgresql/services.dump", "members[1]: name"),
    ],
)
def test_each_field_is_checked(path: str, value: object, problem: str) -> None:
    raw = copy.deepcopy(good_raw())
    set_path(raw, path, value)
    with pytest.raises(ManifestProblem) as caught:
        decode(json.dumps(raw).encode())
    assert problem in str(caught.value)


def test_a_member_listed_twice() -> None:
    raw = good_raw()
    raw["members"].append(raw["members"][0])
    with pytest.raises(
        ManifestProblem, match=r"members: data/core1/postgresql/services.dump is listed twice"
    ):
        decode(json.dumps(raw).encode())


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"\xff", "not JSON"),
        (b"[]", "not a JSON object"),
        (b"null", "not a JSON object"),
    ],
)
def test_not_a_manifest(data: bytes, problem: str) -> None:
    with pytest.raises(ManifestProblem, match=problem):
        decode(data)


def test_good_variants_decode() -> None:
    raw = good_raw()
    raw["members"][0].update(mode="02755", owner="4294967294:0", size=0)
    raw["platform_version"] = None
    raw["checksum"] = _checksum(raw)
    manifest = decode(json.dumps(raw).encode())
    assert manifest.members[0] == dataclasses.replace(
        MEMBERS[0], mode="02755", owner="4294967294:0", size=0
    )
    assert manifest.platform_version is None
