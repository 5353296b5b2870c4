"""kato's crontab entries: rendered with python-crontab, every other line left byte for byte."""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from kato import config
from kato.data import schedule
from kato.data.crontab_lines import TAG, parse_entries, with_line, without_entry
from kato.data.schedule import RunOptions
from kato.errors import PreflightRefused, UsageError
from kato.transport.base import CommandResult

FOREIGN = (
    "# m h  dom mon dow   command\n"
    "MAILTO=ops@example.org\n"
    "17  *\t* * *   /usr/bin/backup-db   --fast  # theirs, odd spacing\n"
    "@reboot /opt/warm-cache\n"
    "\n"
    "# 0 4 * * * /disabled/job\n"
)
ROLES = {"controller", "postgresql", "redis", "filesystem", "router", "dea"}


def line_for(cron: str = "0 3 * * *", **options: Any) -> tuple[str, str]:
    run = RunOptions(**{"dest": "/srv/backups", **options})
    entry = schedule.entry_id(cron, run)
    return entry, schedule.render_line(cron, run, entry)


def test_the_line_runs_kato_on_the_core_node_with_lock_wait_log_and_tag() -> None:
    entry, line = line_for(keep=7, only=("postgresql", "redis"), lock_wait=600)
    assert line.endswith(f" # {TAG}{entry}\n")
    assert line.startswith("0 3 * * * /usr/local/bin/kato --cluster /etc/kato/cluster.yaml ")
    command = line[len("0 3 * * * ") : line.index(" # ")]
    argv = shlex.split(command)
    assert argv[:6] == [
        "/usr/local/bin/kato", "--cluster", "/etc/kato/cluster.yaml", "data", "schedule", "run"
    ]  # fmt: skip
    assert argv[argv.index("--dest") + 1] == "/srv/backups"
    assert argv[argv.index("--keep") + 1] == "7"
    assert argv[argv.index("--role") + 1] == "postgresql,redis"
    assert argv[argv.index("--lock-wait") + 1] == "600"
    assert argv[-3:] == [">>", f"/var/log/kato/export-{entry}.log", "2>&1"]


def test_parallel_given_at_add_is_passed_to_each_run_and_absent_otherwise() -> None:
    plain, line = line_for()
    assert "--parallel" not in line  # the lines (and ids) of schedules without it stay as they were
    bounded, line = line_for(parallel=3)
    argv = shlex.split(line[len("0 3 * * * ") : line.index(" # ")])
    assert argv[argv.index("--parallel") + 1] == "3"
    assert bounded != plain


def test_a_path_with_spaces_and_quotes_stays_one_argument() -> None:
    _, line = line_for(dest="/srv/my backups/it's")
    command = line[len("0 3 * * * ") : line.index(" # ")]
    argv = shlex.split(command)
    assert argv[argv.index("--dest") + 1] == "/srv/my backups/it's"


def test_the_id_is_stable_and_differs_with_the_schedule_or_options() -> None:
    assert line_for()[0] == line_for()[0]
    assert len(line_for()[0]) == 8
    assert line_for()[0] != line_for("0 4 * * *")[0]
    assert line_for()[0] != line_for(keep=3)[0]


def test_adding_and_removing_keeps_every_foreign_byte() -> None:
    entry, line = line_for(keep=2)
    other, other_line = line_for("30 1 * * 0", dest="/srv/weekly")
    text = with_line(with_line(FOREIGN, line), other_line)
    assert text.startswith(FOREIGN)
    assert [e.id for e in parse_entries(text)] == [entry, other]
    assert without_entry(without_entry(text, entry), other) == FOREIGN
    assert without_entry(text, entry) == FOREIGN + other_line


def test_a_crontab_without_final_newline_gets_one_before_the_new_line() -> None:
    _, line = line_for()
    assert with_line("@daily /bin/x", line) == "@daily /bin/x\n" + line
    assert with_line("", line) == line


def test_foreign_lines_that_mention_the_tag_are_not_kato_entries() -> None:
    text = f"# see {TAG}abc in the docs\n0 1 * * * echo {TAG}abc\n"
    assert parse_entries(text) == []
    assert without_entry(text, "abc") == text


def test_listing_reads_schedule_dest_keep_and_log() -> None:
    entry, line = line_for("*/15 * * * *", keep=4)
    (found,) = parse_entries(FOREIGN + line)
    assert (found.id, found.cron, found.dest, found.keep, found.enabled) == (
        entry, "*/15 * * * *", "/srv/backups", 4, True
    )  # fmt: skip
    assert found.log == f"/var/log/kato/export-{entry}.log"


def test_a_commented_out_entry_is_listed_as_disabled_and_can_be_removed() -> None:
    entry, line = line_for()
    (found,) = parse_entries("# " + line)
    assert found.id == entry and not found.enabled
    assert without_entry(FOREIGN + "# " + line, entry) == FOREIGN


@pytest.mark.parametrize(
    ("cron", "options", "problem"),
    [
        ("61 * * * *", {}, "not a valid cron schedule"),
        ("0 3 * *", {}, "not a valid cron schedule"),
        ("every day", {}, "not a valid cron schedule"),
        ("0 3 * * *", {"keep": 0}, "at least 1"),
        ("0 3 * * *", {"compress": "bzip2"}, "use one of"),
        ("0 3 * * *", {"only": ("postgres",)}, "no role named postgres"),
        ("0 3 * * *", {"exclude": ("nope",)}, "no role named nope"),
        ("0 3 * * *", {"dest": "/srv/100%"}, "contains %"),
        ("0 3 * * *", {"dest": "/srv/a\nb"}, "a newline"),
        ("0 3 * * *", {"metrics": "x.prom"}, "absolute path"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(
    cron: str, options: dict[str, Any], problem: str
) -> None:
    with pytest.raises(UsageError, match=problem):
        schedule.validate_cron(cron)
        schedule.validate_options(RunOptions(**{"dest": "/srv/b", **options}), ROLES)


@pytest.mark.parametrize("cron", ["0 3 * * *", "*/5 * * * *", "@daily", "30 2 * * 1-5"])
def test_good_schedules_pass(cron: str) -> None:
    schedule.validate_cron(cron)


@dataclass
class FakeCore:
    """The core node's root crontab, answering the argv kato sends."""

    crontab: str | None = None
    has_kato: bool = True
    node: str = "core1"
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        check: bool = True,
    ) -> CommandResult:
        argv = tuple(argv)
        self.calls.append(argv)
        status, out, err = 0, "", ""
        if argv == ("crontab", "-l"):
            if self.crontab is None:
                status, err = 1, "no crontab for root\n"
            else:
                out = self.crontab
        elif argv == ("crontab", "-"):
            self.crontab = (stdin or b"").decode()
        elif argv == ("crontab", "-r"):
            self.crontab = None
        elif argv[0] == "test":
            status = 0 if self.has_kato else 1
        return CommandResult(self.node, argv, status, out, err, 0.0)


@dataclass
class FakeConnections:
    core: FakeCore

    def get(self, node: str) -> FakeCore:
        return self.core

    def __enter__(self) -> FakeConnections:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class FakeOperation:
    steps: list[str] = []

    def step(self, node: str, description: str, *args: object) -> None:
        self.steps.append(description)


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> FakeCore:
    fake = FakeCore()

    @contextmanager
    def fake_operation(*args: object, **kwargs: object) -> Iterator[FakeOperation]:
        yield FakeOperation()

    monkeypatch.setattr(schedule, "connections", lambda cluster: FakeConnections(fake))
    monkeypatch.setattr(schedule, "operation", fake_operation)
    return fake


CLUSTER = config.Cluster(
    name="prod",
    core="core1",
    nodes=(config.NodeConfig("core1", "10.0.0.1", 22, ("postgresql", "redis")),),
)


def test_add_to_an_empty_crontab_then_list_then_remove(core: FakeCore) -> None:
    change = schedule.add(CLUSTER, "0  3 * * *", RunOptions("/srv/b", keep=3))
    assert change.entry.cron == "0 3 * * *"
    assert core.crontab == change.line
    assert ("mkdir", "-p", "-m", "0750", "/var/log/kato") in core.calls
    assert f"/var/lib/node_exporter/textfile_collector/kato_data_export_{change.entry.id}.prom" in (
        change.line
    )
    assert [e.id for e in schedule.entries(CLUSTER)] == [change.entry.id]
    gone = schedule.remove(CLUSTER, change.entry.id)
    assert gone.id == change.entry.id
    assert core.crontab is None  # nothing else was there: no crontab at all


def test_add_and_remove_leave_foreign_lines_byte_identical(core: FakeCore) -> None:
    core.crontab = FOREIGN
    change = schedule.add(CLUSTER, "0 3 * * *", RunOptions("/srv/b"))
    assert core.crontab == FOREIGN + change.line
    schedule.remove(CLUSTER, change.entry.id)
    assert core.crontab == FOREIGN


def test_dry_run_shows_the_line_and_writes_nothing(core: FakeCore) -> None:
    core.crontab = FOREIGN
    change = schedule.add(CLUSTER, "0 3 * * *", RunOptions("/srv/b"), dry_run=True)
    assert change.dry_run and change.line.startswith("0 3 * * * /usr/local/bin/kato")
    assert core.crontab == FOREIGN
    assert ("crontab", "-") not in core.calls


def test_removing_an_unknown_id_is_refused_listing_the_known_ones(core: FakeCore) -> None:
    change = schedule.add(CLUSTER, "0 3 * * *", RunOptions("/srv/b"))
    before = core.crontab
    with pytest.raises(UsageError, match="no kato schedule 'nope'") as refused:
        schedule.remove(CLUSTER, "nope")
    assert refused.value.hint is not None and change.entry.id in refused.value.hint
    assert core.crontab == before


def test_the_same_schedule_or_destination_twice_is_refused(core: FakeCore) -> None:
    schedule.add(CLUSTER, "0 3 * * *", RunOptions("/srv/b"))
    before = core.crontab
    with pytest.raises(UsageError, match="already in the crontab"):
        schedule.add(CLUSTER, "0 3 * * *", RunOptions("/srv/b"))
    with pytest.raises(UsageError, match="already exports to /srv/b"):
        schedule.add(CLUSTER, "0 5 * * *", RunOptions("/srv/b"))
    assert core.crontab == before


def test_no_kato_on_the_core_node_is_refused_with_a_hint(core: FakeCore) -> None:
    core.has_kato = False
    with pytest.raises(PreflightRefused, match="kato is not installed") as refused:
        schedule.add(CLUSTER, "0 3 * * *", RunOptions("/srv/b"))
    assert refused.value.hint and "/usr/local/bin/kato" in refused.value.hint
    assert core.crontab is None


def test_bad_input_contacts_nothing(core: FakeCore) -> None:
    with pytest.raises(UsageError, match="no role named router"):
        schedule.add(CLUSTER, "0 3 * * *", RunOptions("/srv/b", only=("router",)))
    with pytest.raises(UsageError, match="absolute path on the core node"):
        schedule.add(CLUSTER, "0 3 * * *", RunOptions("backups"))
    assert core.calls == []


def _cluster_with_core(address: str) -> config.Cluster:
    return config.parse(
        {
            "name": "prod",
            "core": "core1",
            "nodes": [
                {"name": "core1", "address": address, "roles": ["controller"]},
                {"name": "web1", "address": "192.0.2.20", "roles": ["router"]},
            ],
        },
        "/srv/kato/prod.yaml",
    )


def test_on_the_core_node_cron_runs_the_kato_running_now_with_the_file_it_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("KATO_NODE_FILE", str(tmp_path / "none"))
    running = ("/opt/pipx/venvs/kato/bin/python", "-m", "kato")
    runner = schedule.runner_on_core(_cluster_with_core("127.0.0.1"), running)
    assert runner == schedule.Runner(running, "/srv/kato/prod.yaml")
    line = schedule.render_line("0 3 * * *", RunOptions("/srv/b"), "abcd1234", runner)
    assert line.startswith(
        "0 3 * * * /opt/pipx/venvs/kato/bin/python -m kato --cluster /srv/kato/prod.yaml data"
    )


def test_elsewhere_cron_runs_the_conventional_paths_unless_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("KATO_NODE_FILE", str(tmp_path / "none"))
    cluster = _cluster_with_core("192.0.2.10")  # TEST-NET: never an address of this machine
    assert schedule.runner_on_core(cluster, ("/x/kato",)) == schedule.Runner()
    told = schedule.runner_on_core(cluster, ("/x/kato",), "/opt/kato/bin/kato", "/etc/c.yaml")
    assert told == schedule.Runner(("/opt/kato/bin/kato",), "/etc/c.yaml")
    with pytest.raises(UsageError, match="absolute path"):
        schedule.runner_on_core(cluster, ("/x/kato",), "kato")
