"""kato/data/import_.py: an import asks and connects to the nodes its archive's members go to
(and the core node) only, and switches a role in one call on its node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kato.config import DataLimits
from kato.data.import_ import import_file
from kato.data.switch import ROLLBACK
from kato.data.switch_plan import UNSTAGE
from kato.engine.session import session
from kato.errors import ExitCode, KatoError, NodeUnreachable
from kato.remote.agent import AGENT
from kato.role_definitions import DefinitionsUnknown
from tests.fakes import FakeNode
from tests.unit.data.build import Content, rich_tree, write_archive
from tests.unit.data.survey_nodes import DROPLETS, Nodes

UNITS = "kato-filesystem.service"
Said = tuple[int, str, str] | None  # a fake node's answer (None: not this hook's)


class Staging:
    """The node data program's import as a node with room answers it (the member's bytes are
    checked here, on the core, while they stream: format 2), reporting the units it is asked
    about as they are (or as `seen` says, when something changes them after it looked; or
    not at all when `silent`, as when the node's systemctl did not answer)."""

    def __init__(
        self, seen: dict[str, str] | None = None, error: str = "", silent: bool = False
    ) -> None:
        self.seen, self.error, self.silent = seen, error, silent

    def __call__(
        self, node: FakeNode, argv: tuple[str, ...], stdin: bytes | None
    ) -> tuple[int, str, str] | None:
        if argv[:2] != ("python3", "-S") or not argv[2].endswith("/node_data.py"):
            return None
        size, sha = argv[7], argv[8]
        units = self.seen or {u: node.units.get(u, "inactive") for u in argv[10:]}
        said = {"size": int(size), "sha256": sha, "status": 1 if self.error else 0,
                "error": self.error, "units": None if self.silent else units}  # fmt: skip
        return 0, "", "KATO-RESULT " + json.dumps(said) + "\n"


def one_node_import(
    tmp_path: Path,
    dry_run: bool = False,
    world: Nodes | None = None,
    staging: Staging | None = None,
) -> Nodes:
    """A real archive of node1's droplets imported into a 3-node cluster (node1 the core and
    the only node with the filesystem role), its filesystem role running."""
    world = world or Nodes()
    world.fake.answers.insert(0, staging or Staging())
    world.fake.nodes["node1"].units.setdefault(UNITS, "active")
    world.fake.nodes["node1"].files[AGENT.argv("node_facts.py")[2].rsplit("/", 1)[0]] = (
        b""  # shipped
    )
    archive = tmp_path / "a.tar.zst"
    archive.parent.mkdir(exist_ok=True)
    write_archive(archive, "zstd", [Content("node1", "filesystem", "droplets", "tree",
                                            rich_tree(), DROPLETS)])  # fmt: skip
    with session(world.fake.cluster, ["kato", "data", "import"], dry_run=dry_run,
                 factory=world.fake.factory) as s:  # fmt: skip
        result = import_file(s, archive, "a.tar.zst", DataLimits(), (), ())
    assert [p.target.path for p in result.placements] == [DROPLETS]
    return world


def programs(world: Nodes, node: str) -> list[str]:
    """What each command on the node was: the agent program's name, else the command's."""
    return [
        argv[2].rsplit("/", 1)[-1] if argv[:2] == ("python3", "-S") else " ".join(argv[:2])
        for argv in world.fake.ran(node)
    ]


def test_a_one_node_archive_connects_to_that_node_alone(tmp_path: Path) -> None:
    world = one_node_import(tmp_path)
    assert world.fake.opened == ["node1"]  # node2 and node3 carry nothing the archive holds
    assert world.agent_calls()["node1"] >= 1
    ran = programs(world, "node1")
    assert ran.count("node_facts.py") == 1  # the survey: one call for everything it asks
    assert ran.count("node_data.py") == 1  # the staging
    assert ran.count("role_cycle.py") == 1  # stop, switch, start and health: one call
    assert world.fake.nodes["node1"].units[UNITS] == "active"


def test_the_switch_of_a_one_node_import_is_one_request_to_a_cycle_started_while_it_staged(
    tmp_path: Path,
) -> None:
    world = one_node_import(tmp_path)
    calls = world.fake.ran("node1")
    staged = next(i for i, a in enumerate(calls) if a[2:3] and a[2].endswith("/node_data.py"))
    cycles = [i for i, a in enumerate(calls) if a[2:3] and a[2].endswith("/role_cycle.py")]
    assert len(cycles) == 1 and calls[cycles[0]][3:] == ("--wait",)  # no new session at its turn
    assert calls[staged][10:] == (UNITS,)  # staging reports the units' states...
    assert ("systemctl", "is-active", "--", UNITS) not in calls  # ...so no call asks them
    stops = [e for e in world.fake.journal if e.get("action") == "stop"]
    assert [e["was_active"] for e in stops] == [True]
    removed = [a for a in calls if "rm" in a[:1] or (a[:3] == ("sh", "-c", UNSTAGE))]
    assert [a[:3] for a in removed] == [("sh", "-c", UNSTAGE)]  # the staging dir: in that call


def test_a_role_stopped_after_staging_looked_is_decided_again_and_left_stopped(
    tmp_path: Path,
) -> None:
    world = Nodes()
    world.fake.nodes["node1"].units[UNITS] = "inactive"  # stopped after staging saw it run
    one_node_import(tmp_path, world=world, staging=Staging({UNITS: "active"}))
    stops = [e["was_active"] for e in world.fake.journal if e.get("action") == "stop"]
    assert stops == [True, False]  # journaled as seen, then as the node found it
    assert world.fake.nodes["node1"].units[UNITS] == "inactive"  # not started: it did not run
    switched = [a for a in world.fake.ran("node1") if a[:2] == ("sh", "-c") and "mv" in a[2]]
    assert len(switched) == 1  # the data dir switched once, by the second decision
    assert [e["event"] for e in world.fake.journal][0::len(world.fake.journal) - 1] == [
        "begin", "end"
    ]  # fmt: skip


def test_a_role_whose_states_staging_could_not_report_is_asked_of_systemd_and_decided_so(
    tmp_path: Path,
) -> None:
    world = Nodes()
    world.fake.nodes["node1"].units[UNITS] = "inactive"
    one_node_import(tmp_path, world=world, staging=Staging(silent=True))
    asked = [a for a in world.fake.ran("node1") if a[:2] == ("systemctl", "is-active")]
    assert asked == [("systemctl", "is-active", "--", UNITS)]  # once, by the switch
    stops = [e["was_active"] for e in world.fake.journal if e.get("action") == "stop"]
    assert stops == [False]  # decided from systemd's answer: left stopped
    assert world.fake.nodes["node1"].units[UNITS] == "inactive"


def test_a_dry_run_asks_the_same_nodes_and_takes_no_lock(tmp_path: Path) -> None:
    world = one_node_import(tmp_path, dry_run=True)
    assert world.fake.opened == ["node1"]
    assert programs(world, "node1") == ["node_facts.py"]
    assert world.fake.journal == [] and world.fake.lock is None


def test_an_unreachable_target_stops_it_before_any_change_and_another_node_does_not(
    tmp_path: Path,
) -> None:
    world = Nodes()
    world.fake.nodes["node2"].down = True  # carries nothing the archive holds
    one_node_import(tmp_path / "a", world=world)
    world = Nodes()
    world.fake.nodes["node1"].down = True
    with pytest.raises(DefinitionsUnknown) as caught:
        one_node_import(tmp_path / "b", world=world)
    assert caught.value.exit_code == ExitCode.UNREACHABLE
    assert world.fake.lock is None and world.fake.journal == []


def test_a_failed_staging_cancels_the_waiting_cycle_and_nothing_is_stopped(tmp_path: Path) -> None:
    world = Nodes()
    with pytest.raises(KatoError, match="droplets.tar failed: No space left on device"):
        one_node_import(tmp_path, world=world, staging=Staging(error="No space left on device"))
    calls = world.fake.ran("node1")
    waited = [a for a in calls if a[2:3] and a[2].endswith("/role_cycle.py")]
    assert [a[3:] for a in waited] == [("--wait",)]  # started, then cancelled: sent nothing
    assert not [a for a in calls if a[:2] == ("systemctl", "stop")]
    assert world.fake.nodes["node1"].units[UNITS] == "active"
    assert not [e for e in world.fake.journal if e.get("action") == "stop"]
    assert [a[:3] for a in calls if a[:1] == ("rm",)] == [("rm", "-rf", "--")]  # unstaged


class Lost(Staging):
    """The node goes down while its member streams in."""

    def __call__(
        self, node: FakeNode, argv: tuple[str, ...], stdin: bytes | None
    ) -> tuple[int, str, str] | None:
        if argv[:2] == ("python3", "-S") and argv[2].endswith("/node_data.py"):
            node.down = True
            raise NodeUnreachable(node.name, "transfer", "the connection closed while staging")
        return None


def test_a_node_lost_while_staging_names_the_staging_it_keeps_and_the_cleanup(
    tmp_path: Path,
) -> None:
    world = Nodes()
    with pytest.raises(NodeUnreachable) as caught:
        one_node_import(tmp_path, world=world, staging=Lost())
    hint = caught.value.hint or ""
    assert "staging left on the node (node1: /var/lib/kato/data/.kato-import-" in hint, hint
    assert "`kato data cleanup` removes it once it answers" in hint
    assert caught.value.exit_code == ExitCode.UNREACHABLE


def role_cycles_with_input(argv: tuple[str, ...], stdin: bytes | None) -> bool:
    return argv[:2] == ("python3", "-S") and argv[2].endswith("/role_cycle.py") and bool(stdin)


def test_a_switch_call_that_dies_unanswered_puts_back_every_data_dir(tmp_path: Path) -> None:
    """The node may have moved the data dir aside before its program died: the undo puts back
    every data dir of the role (a dir never moved is left alone by the put-back script)."""
    world, died = Nodes(), list[str]()

    def dies_once(
        node: FakeNode, argv: tuple[str, ...], stdin: bytes | None
    ) -> tuple[int, str, str] | None:
        if role_cycles_with_input(argv, stdin) and not died:
            died.append(node.name)
            return 255, "", "Killed"  # the program killed mid-switch: no answer
        return None

    world.fake.answers.append(dies_once)
    with pytest.raises(KatoError):
        one_node_import(tmp_path, world=world)
    assert died == ["node1"]
    put_back = [a for a in world.fake.ran("node1") if a[:3] == ("sh", "-c", ROLLBACK)]
    assert [a[4] for a in put_back] == [DROPLETS]


def test_a_role_that_keeps_changing_state_is_left_as_it_is(tmp_path: Path) -> None:
    """Nothing ran on the node (it answered each time that the role was not as journaled):
    the failed import's undo must not stop it either."""
    world = Nodes()

    def flips(
        node: FakeNode, argv: tuple[str, ...], stdin: bytes | None
    ) -> tuple[int, str, str] | None:
        if role_cycles_with_input(argv, stdin):  # something else starts or stops it again
            node.units[UNITS] = "inactive" if node.units.get(UNITS) == "active" else "active"
        return None

    world.fake.answers.insert(0, flips)
    with pytest.raises(KatoError, match="kept changing state"):
        one_node_import(tmp_path, world=world)
    assert not [a for a in world.fake.ran("node1") if a[:1] == ("systemctl",) and "stop" in a]
