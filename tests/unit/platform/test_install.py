"""The install planner: only what a node lacks, nothing when it has it all."""

from __future__ import annotations

from kato.config import parse
from kato.platform.control import plan_control
from kato.platform.install import Artifacts, Installed, plan_node, upstreams
from kato.roles import load_roles
from kato.status import roles_directory

CLUSTER = parse(
    {
        "name": "c",
        "core": "n1",
        "nodes": [
            {"name": "n1", "address": "10.0.0.1", "roles": ["controller"]},
            {"name": "n2", "address": "10.0.0.2", "roles": ["router", "dea"]},
        ],
    },
    "c.yaml",
)
ROLES = load_roles(roles_directory())
ARTIFACTS = Artifacts("1.0.0", {r: f"/tmp/{r}.tgz" for r in ROLES}, {r: f"sha-{r}" for r in ROLES})


def nothing() -> Installed:
    return Installed(None, {}, {}, {})


def test_a_fresh_node_gets_every_step_in_order() -> None:
    node = CLUSTER.node("n2")
    steps = plan_node(CLUSTER, node, [ROLES["dea"], ROLES["router"]], ARTIFACTS, nothing())
    names = [s.description for s in steps]
    assert names[0] == "make the private staging dir"
    assert (
        names.index("upload the dea artifact")
        < names.index("verify the dea artifact on the node")
        < names.index("unpack dea 1.0.0")
    )
    assert "write /etc/kato/router-upstreams.conf" in names
    assert names[-4:] == [
        "switch current to 1.0.0",
        "rename it into place atomically",
        "reload systemd",
        "enable the role units",
    ]
    upload = steps[1]
    assert upload.upload == "/tmp/dea.tgz" and upload.argv[-1].startswith("/var/lib/kato/staging/")


def test_a_node_that_has_everything_gets_no_steps() -> None:
    node = CLUSTER.node("n2")
    roles = [ROLES["dea"], ROLES["router"]]
    from kato.platform.install import UPSTREAMS, node_document

    have = Installed(
        "1.0.0",
        {"dea": "sha-dea", "router": "sha-router"},
        {u: True for r in roles for u in r.units},
        {"/etc/kato/node.yaml": node_document(CLUSTER, node), UPSTREAMS: upstreams(CLUSTER)},
    )
    assert plan_node(CLUSTER, node, roles, ARTIFACTS, have) == []


def test_a_changed_unit_file_is_put_back_alone() -> None:
    node = CLUSTER.node("n1")
    from kato.platform.install import node_document

    have = Installed(
        "1.0.0",
        {"controller": "sha-controller"},
        {"kato-controller.service": False},
        {"/etc/kato/node.yaml": node_document(CLUSTER, node)},
    )
    names = [
        s.description for s in plan_node(CLUSTER, node, [ROLES["controller"]], ARTIFACTS, have)
    ]
    assert names == [
        "install unit kato-controller.service",
        "reload systemd",
        "enable the role units",
    ]


def test_upstreams_list_every_dea() -> None:
    assert "server 10.0.0.2:9000;" in upstreams(CLUSTER)


def test_stop_goes_in_reverse_role_order() -> None:
    every = list(ROLES.values())
    from kato.roles import in_start_order

    ordered = list(in_start_order(every))
    start = plan_control(CLUSTER, "start", ordered, None)
    stop = plan_control(CLUSTER, "stop", ordered, None)
    starts = [s.description.split()[1] for s in start.steps]
    stops = [s.description.split()[1] for s in stop.steps]
    assert starts.index("dea") < starts.index("router")
    assert stops.index("router") < stops.index("dea")
    assert {s.node for s in start.steps if "router" in s.description} == {"n2"}
