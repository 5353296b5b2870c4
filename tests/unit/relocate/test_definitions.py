"""`kato relocate` follows each node's release: a data dir the release running on a node adds
(the reference 1.2.0 controller's `audit`) is relocated, and cleaned up, as that release
defines it; a node on an older release has no such dir to move."""

from __future__ import annotations

from pathlib import Path

import pytest

from kato import role_definitions
from kato.datadirs import Locations
from kato.errors import UsageError
from kato.relocate.cleanup import old_copies
from kato.relocate.targets import check_name, holders, targets
from kato.role_definitions import ClusterRoles, NodeRoles, resolve
from tests.unit.role_helpers import cluster, texts

AUDIT = "/var/lib/kato/data/controller-audit"


@pytest.fixture
def mixed(release_repo: Path, tmp_path: Path) -> ClusterRoles:
    """n1 runs 1.2.0 (the controller has an audit dir), n2 runs 1.1.0 (it has none)."""
    return ClusterRoles(
        {
            "n1": resolve(cluster(), "n1", "1.2.0", texts(release_repo, "1.2.0", tmp_path)),
            "n2": resolve(cluster(), "n2", "1.1.0", texts(release_repo, "1.1.0", tmp_path)),
        }
    )


def test_a_data_dir_a_nodes_release_adds_is_relocated_there_only(mixed: ClusterRoles) -> None:
    check_name("audit", mixed.known())  # known: some node's release declares it
    with pytest.raises(UsageError):  # kato's bundled definitions alone do not know it
        check_name("audit", role_definitions.bundled())
    assert holders(cluster(), mixed, "audit", ()) == ["n1"]
    found = targets(cluster(), mixed, "audit", "/mnt/ebs/a", {"n1": Locations()})
    assert [(t.node, t.role.name, t.declared, t.current, t.dest) for t in found] == [
        ("n1", "controller", AUDIT, AUDIT, "/mnt/ebs/a/controller")
    ]
    both = targets(
        cluster(), mixed, "controller", "/mnt/ebs/c", {"n1": Locations(), "n2": Locations()}
    )
    assert [t.node for t in both] == ["n1", "n2"]


def test_a_node_whose_release_lacks_the_role_has_nothing_to_move(
    release_repo: Path, tmp_path: Path, mixed: ClusterRoles
) -> None:
    only_router = {"router": texts(release_repo, "1.1.0", tmp_path)["router"]}
    roles = resolve(cluster(), "n2", "1.1.0", only_router).roles
    defined = ClusterRoles({"n1": mixed.nodes["n1"], "n2": NodeRoles("n2", "1.1.0", roles, "x")})
    assert holders(cluster(), defined, "controller", ()) == ["n1"]
    with pytest.raises(UsageError) as caught:
        targets(cluster(), defined, "controller", "/mnt/ebs/c", {}, ["n2"])
    assert "no role with a controller data dir runs on n2" in caught.value.message


def test_cleanup_empties_the_declared_path_the_nodes_release_declares(mixed: ClusterRoles) -> None:
    """The old copy at the audit dir's declared path is the bind mount's target: emptied, never
    removed. With definitions that do not declare it, kato would take it for a plain copy."""
    where = Locations(
        moved={"controller": {"audit": "/mnt/ebs/a/controller"}},
        previous={"controller": {"audit": (AUDIT,)}},
    )
    skipped: list[str] = []
    found = old_copies("n1", where, mixed.of("n1"), skipped)
    assert [(c.path, c.emptied_only) for c in found] == [(AUDIT, True)]
    bundled = old_copies("n1", where, role_definitions.bundled(), [])
    assert [(c.path, c.emptied_only) for c in bundled] == [(AUDIT, False)]  # what it was before
    assert skipped == []


def test_a_name_no_release_of_the_repository_declares_is_refused_before_asking_nodes(
    release_repo: Path,
) -> None:
    """The name check before any node is contacted reads the repository's releases too."""
    offline = role_definitions.without_nodes(cluster(release_repo))
    check_name("audit", *offline)
    with pytest.raises(UsageError) as caught:
        check_name("audits", *offline)
    assert "audit, containers, controller, droplets, services" in (caught.value.hint or "")
    with pytest.raises(UsageError):  # no repository: kato's bundled definitions only
        check_name("audit", *role_definitions.without_nodes(cluster()))
