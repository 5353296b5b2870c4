"""kato/data/offsite.py and shipping.py without a remote: locations, the cluster file's
offsite section, refusals before anything runs, and the schedule's --offsite."""

from __future__ import annotations

from pathlib import Path

import pytest

from kato.config import parse
from kato.data import offsite, shipping
from kato.data.schedule import RunOptions, validate_options
from kato.errors import UsageError

CLUSTER = {
    "name": "prod",
    "core": "node1",
    "nodes": [{"name": "node1", "address": "192.0.2.1", "roles": ["redis"]}],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("backup:kato/prod", offsite.Location("backup", "kato/prod")),
        ("away:/srv/backups", offsite.Location("away", "/srv/backups")),
        ("s3.eu-1:bucket", offsite.Location("s3.eu-1", "bucket")),
        ("away:", offsite.Location("away", "")),
        ("/srv/backups", None),
        ("./like:this", None),
        ("ssh://root@old-core", None),
        ("-", None),
        ("plain", None),
    ],
)
def test_remote_path_or_local(text: str, expected: offsite.Location | None) -> None:
    assert offsite.parse_location(text) == expected


def test_join_names_a_file_in_the_location() -> None:
    assert offsite.Location("b", "kato/prod/").join("x.tar.zst") == "b:kato/prod/x.tar.zst"
    assert offsite.Location("b", "").join("x.tar.zst") == "b:x.tar.zst"


def test_the_cluster_file_names_the_rclone_config() -> None:
    cluster = parse({**CLUSTER, "offsite": {"rclone_config": "/etc/kato/rclone.conf"}}, "c.yaml")
    assert cluster.rclone_config == "/etc/kato/rclone.conf"
    assert parse(CLUSTER, "c.yaml").rclone_config is None


@pytest.mark.parametrize(
    ("offsite_section", "problem"),
    [
        (
            {"rclone_config": "rclone.conf"},
            "offsite.rclone_config: 'rclone.conf' must be an absolute",
        ),
        ({"rclone": "/x"}, "offsite.rclone: unknown key"),
        ("/etc/kato/rclone.conf", "offsite: must be a mapping"),
    ],
)
def test_a_bad_offsite_section_is_refused_with_its_path(
    offsite_section: object, problem: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse({**CLUSTER, "offsite": offsite_section}, "c.yaml")
    assert problem in str(caught.value)


def test_no_rclone_config_is_refused_naming_the_cluster_file_key() -> None:
    with pytest.raises(UsageError, match="names no rclone config") as caught:
        offsite.rclone_base(parse(CLUSTER, "c.yaml"))
    assert "offsite: {rclone_config:" in (caught.value.hint or "")


def test_a_missing_rclone_config_file_is_refused(tmp_path: Path) -> None:
    missing = str(tmp_path / "rclone.conf")
    cluster = parse({**CLUSTER, "offsite": {"rclone_config": missing}}, "c.yaml")
    with pytest.raises(UsageError, match="does not exist"):
        offsite.rclone_base(cluster)


def test_export_to_refuses_a_local_path_and_standard_output_before_exporting(
    tmp_path: Path,
) -> None:
    cluster = parse(CLUSTER, "c.yaml")
    with pytest.raises(UsageError, match="is not REMOTE:PATH"):
        shipping.export_to(cluster, str(tmp_path), "/srv/elsewhere")
    with pytest.raises(UsageError, match="DEST - has none"):
        shipping.export_to(cluster, "-", "backup:kato")


def test_rclone_s_log_prefix_is_dropped_from_its_reason() -> None:
    line = "2026/11/30 15:36:54 Failed to create file system: couldn't connect SSH"
    assert offsite._plain(line) == "Failed to create file system: couldn't connect SSH"
    assert offsite._plain("2026/11/30 15:36:54 ERROR : x: boom") == "x: boom"


def test_the_schedule_carries_offsite_on_its_line_and_checks_it() -> None:
    options = RunOptions("/srv/backups", keep=3, offsite="backup:kato/prod")
    assert options.argv()[-2:] == ["--offsite", "backup:kato/prod"]
    validate_options(options, {"redis"})
    with pytest.raises(UsageError, match="--offsite '/srv/x' is not REMOTE:PATH"):
        validate_options(RunOptions("/srv/backups", offsite="/srv/x"), {"redis"})


def names(*stamps: str, cluster: str = "prod") -> list[str]:
    return [f"{cluster}-2026112{s}T030000Z.tar.zst" for s in stamps]


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """An off-site location holding the files listed (rclone deletefile removes from it)."""
    from kato.data.archive import parse_archive_name

    held: list[str] = []

    def listing(cluster: object, at: object) -> list[tuple[str, int, object]]:
        found = [(n, 1, parse_archive_name(n)) for n in held]
        return sorted(found, key=lambda f: (f[2][1], f[0]), reverse=True)  # type: ignore[index]

    def rclone(cluster: object, verb: str, target: str, **_: object) -> str:
        assert verb == "deletefile"
        held.remove(target.rsplit("/", 1)[-1])
        return ""

    monkeypatch.setattr(offsite, "listing", listing)
    monkeypatch.setattr(offsite, "rclone", rclone)
    return held


def test_off_site_retention_counts_only_copies_that_verify(remote: list[str]) -> None:
    cluster = parse(CLUSTER, "c.yaml")
    at = offsite.Location("away", "/srv")
    a, b, c, d = names("1", "2", "3", "4")
    remote.extend([a, b, c, d, *names("0", cluster="other")])
    read: list[str] = []

    def verifier(name: str) -> str | None:
        read.append(name)
        return "data/x: sha256 does not match the manifest: corrupt" if name == c else None

    kept = shipping.keep_newest(cluster, at, 2, uploaded=d, verifier=verifier)
    # d was checked by its upload, c is corrupt (kept, not counted), b verifies: a goes unread
    assert read == [c, b] and kept.deleted == (a,)
    assert [x.name for x in kept.plan.invalid] == [c] and kept.plan.keep == (d, b)
    assert sorted(remote) == sorted([b, c, d, *names("0", cluster="other")])


def test_off_site_retention_deletes_nothing_when_no_copy_verifies(remote: list[str]) -> None:
    cluster = parse(CLUSTER, "c.yaml")
    remote.extend(names("1", "2", "3"))
    kept = shipping.keep_newest(
        cluster, offsite.Location("away", "/srv"), 1, verifier=lambda name: "corrupt"
    )
    assert kept.deleted == () and len(kept.plan.invalid) == 3 and len(remote) == 3


def test_export_to_a_remote_the_config_lacks_is_refused_before_exporting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rclone.conf"
    config.write_text("[away]\ntype = local\n")
    cluster = parse({**CLUSTER, "offsite": {"rclone_config": str(config)}}, "c.yaml")
    for typo in ("nope", "AWAY"):  # a file's remotes go by their exact name
        with pytest.raises(UsageError, match=f"no remote named '{typo}' in the rclone config"):
            shipping.export_to(cluster, str(tmp_path), f"{typo}:kato")  # no export: no nodes
    offsite.require_remote(cluster, offsite.Location("away", "kato"))
    monkeypatch.setenv("RCLONE_CONFIG_ELSEWHERE_TYPE", "local")  # defined by the environment
    offsite.require_remote(cluster, offsite.Location("elsewhere", "kato"))
