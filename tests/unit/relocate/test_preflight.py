"""The relocation's targets and preflight: pure functions of the nodes' facts, each refusal
named, tested without nodes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kato import config
from kato.datadirs import Locations, parse
from kato.errors import ExitCode, PreflightRefused, UsageError
from kato.relocate.facts import NodeFacts, PathInfo, Quota
from kato.relocate.preflight import MARGIN_BYTES, check, needed_bytes
from kato.relocate.targets import Target, check_location, check_name, targets
from kato.roles import Role, load_roles

REPO_ROOT = Path(__file__).resolve().parents[3]
ROOT_FS = 1  # the device numbers of the old and the new filesystem
NEW_FS = 2
SERVICES = {"postgresql": "/var/lib/kato/data/services/postgresql",
            "redis": "/var/lib/kato/data/services/redis"}  # fmt: skip


@pytest.fixture(scope="module")
def roles() -> dict[str, Role]:
    return load_roles(REPO_ROOT / "roles")


def cluster() -> config.Cluster:
    raw: dict[str, Any] = {
        "name": "stage",
        "core": "node1",
        "nodes": [
            {"name": "node1", "address": "10.0.0.1", "roles": ["postgresql", "redis", "dea"]},
            {"name": "node2", "address": "10.0.0.2", "roles": ["dea"]},
        ],
    }
    return config.parse(raw, "test")


def info(path: str, kind: str = "dir", *, device: int = ROOT_FS, free: int = 10 << 30,
         used: int = 0, names: tuple[str, ...] = (), fstype: str = "ext4") -> PathInfo:  # fmt: skip
    mount = "/mnt/ebs" if device == NEW_FS else "/"
    return PathInfo(path, kind, fstype, mount, device, free, 20 << 30, "rw", used, 0, names)


def services(roles: dict[str, Role], where: Locations | None = None) -> tuple[Target, ...]:
    here = where or Locations()
    return targets(cluster(), roles, "services", "/mnt/ebs/s", {"node1": here, "node2": here})


def facts(found: tuple[Target, ...], **new: Any) -> dict[str, NodeFacts]:
    paths = {t.current: info(t.current, used=100 << 20) for t in found}
    paths |= {t.dest: info(t.dest, "missing", device=NEW_FS) for t in found}
    paths["/mnt/ebs/s"] = info("/mnt/ebs/s", "missing", device=NEW_FS)
    paths["/mnt/ebs/s"] = replace(paths["/mnt/ebs/s"], **new)
    return {"node1": NodeFacts("node1", Locations(), paths, None)}


def test_targets_go_to_location_slash_role_in_start_order(roles: dict[str, Role]) -> None:
    found = services(roles)
    assert [(t.node, t.role.name, t.current, t.dest) for t in found] == [
        ("node1", "postgresql", SERVICES["postgresql"], "/mnt/ebs/s/postgresql"),
        ("node1", "redis", SERVICES["redis"], "/mnt/ebs/s/redis"),
    ]
    assert not any(t.done for t in found)


def test_a_moved_data_dir_is_taken_from_where_the_record_says(roles: dict[str, Role]) -> None:
    record = ('{"format": 1, "data_dirs": {"redis": {"services": {"path": "/mnt/ebs/s/redis", '
              '"declared": "/var/lib/kato/data/services/redis"}}}, "previous": {}}')  # fmt: skip
    found = services(roles, parse("node1", record))
    assert [t.done for t in found] == [False, True]


def test_an_unknown_name_lists_the_valid_ones(roles: dict[str, Role]) -> None:
    with pytest.raises(UsageError) as caught:
        check_name("service", roles)
    assert caught.value.hint == "the data dirs are: containers, controller, droplets, services"
    assert caught.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("bad", ["relative/x", "/mnt/ebs/", "/mnt/../etc", "/mnt/a b", "/mnt/a:b"])
def test_locations_that_are_not_plain_absolute_paths_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        check_location(bad)


def test_no_role_with_that_data_dir_on_the_chosen_nodes_is_a_usage_error(
    roles: dict[str, Role],
) -> None:
    with pytest.raises(UsageError, match="no role with a services data dir runs on node2"):
        targets(cluster(), roles, "services", "/mnt/x", {"node2": Locations()}, ["node2"])


def test_a_good_location_passes_and_warns_of_nothing(roles: dict[str, Role]) -> None:
    found = services(roles)
    verdict = check(found, facts(found), "/mnt/ebs/s")
    assert (verdict.problems, verdict.warnings) == ([], [])


@pytest.mark.parametrize(
    ("new", "problem"),
    [
        ({"kind": "symlink"}, "is a symlink"),
        ({"kind": "other"}, "exists and is not a directory"),
        ({"fstype": "tmpfs"}, "is on tmpfs (mounted at /mnt/ebs), which does not keep data"),
        ({"kind": "dir", "names": ("lost+found", "db")}, "already holds data (db)"),
        ({"free": needed_bytes(200 << 20) - 1}, "needs 274.0 MiB (the data, 5% and 64 MiB)"),
    ],
)
def test_each_problem_is_named(roles: dict[str, Role], new: dict[str, Any], problem: str) -> None:
    found = services(roles)
    verdict = check(found, facts(found, **new), "/mnt/ebs/s")
    assert len(verdict.problems) == 1 and problem in verdict.problems[0], verdict.problems
    with pytest.raises(PreflightRefused) as caught:
        verdict.refuse_if_any()
    assert caught.value.exit_code == ExitCode.PREFLIGHT


def test_a_location_inside_the_data_dir_or_holding_it_is_refused(roles: dict[str, Role]) -> None:
    found = targets(cluster(), roles, "services", "/var/lib/kato/data",
                    {"node1": Locations()}, ["node1"])  # fmt: skip
    paths = {t.current: info(t.current) for t in found}
    paths |= {t.dest: info(t.dest, "missing") for t in found}
    paths["/var/lib/kato/data"] = info("/var/lib/kato/data", names=("services",))
    verdict = check(found, {"node1": NodeFacts("node1", Locations(), paths, None)},
                    "/var/lib/kato/data")  # fmt: skip
    assert any("is inside /var/lib/kato/data" in p for p in verdict.problems), verdict.problems
    inner = targets(cluster(), roles, "services", f"{SERVICES['redis']}/x",
                    {"node1": Locations()}, ["node1"])  # fmt: skip
    paths = {p: info(p) for t in inner for p in (t.current, t.dest)}
    paths[f"{SERVICES['redis']}/x"] = info(f"{SERVICES['redis']}/x", "missing")
    verdict = check(inner, {"node1": NodeFacts("node1", Locations(), paths, None)},
                    f"{SERVICES['redis']}/x")  # fmt: skip
    assert any("is inside the services data dir of redis" in p for p in verdict.problems)


def test_the_same_filesystem_is_a_warning(roles: dict[str, Role]) -> None:
    found = services(roles)
    verdict = check(found, facts(found, device=ROOT_FS), "/mnt/ebs/s")
    assert verdict.problems == []
    assert len(verdict.warnings) == 2 and "nothing is gained" in verdict.warnings[0]


def test_a_copy_an_interrupted_run_left_is_ours_and_counts_as_copied(
    roles: dict[str, Role],
) -> None:
    found = services(roles)
    moving = Locations(moving={"postgresql": {"services": ("/mnt/ebs/s/postgresql", "copying")}})
    known = facts(
        found, kind="dir", names=("postgresql",), free=needed_bytes(200 << 20) - (100 << 20)
    )
    known["node1"] = replace(known["node1"], locations=moving)
    known["node1"].paths["/mnt/ebs/s/postgresql"] = info("/mnt/ebs/s/postgresql", used=100 << 20,
                                                         device=NEW_FS)  # fmt: skip
    assert check(found, known, "/mnt/ebs/s").problems == []


def test_containers_on_a_filesystem_without_quotas_need_no_quota(roles: dict[str, Role]) -> None:
    found = targets(cluster(), roles, "containers", "/mnt/ebs/k", {"node1": Locations()},
                    ["node1"])  # fmt: skip
    paths = {t.current: info(t.current) for t in found}
    paths |= {t.dest: info(t.dest, "missing", device=NEW_FS) for t in found}
    paths["/mnt/ebs/k"] = info("/mnt/ebs/k", "missing", device=NEW_FS)
    why = "this kernel has no quota format module (CONFIG_QFMT_V2 is not set)"
    known = {"node1": NodeFacts("node1", Locations(), paths, Quota(False, why, "unsupported"))}
    refused = check(found, known, "/mnt/ebs/k")
    assert len(refused.problems) == 1
    assert why in refused.problems[0] and "--no-quota" in refused.problems[0]
    allowed = check(found, known, "/mnt/ebs/k", no_quota=True)
    assert allowed.problems == [] and why in allowed.warnings[0]


def test_the_margin_is_five_percent_and_64_mib() -> None:
    assert needed_bytes(0) == MARGIN_BYTES
    assert needed_bytes(100 << 20) == (105 << 20) + MARGIN_BYTES
