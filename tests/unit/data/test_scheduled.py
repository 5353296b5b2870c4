"""One scheduled run: export, retention and the metric, whatever the export does."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kato import config
from kato.data import export, metrics, scheduled
from kato.data.schedule import RunOptions
from kato.errors import LockHeld, UsageError

CLUSTER = config.Cluster(
    name="prod",
    core="core1",
    nodes=(config.NodeConfig("core1", "10.0.0.1", 22, ("postgresql", "redis")),),
)


@dataclass
class FakeExport:
    """Writes an archive named as export names it, or raises what it is told to."""

    stamps: list[str]
    error: Exception | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, cluster: config.Cluster, dest: str, **kwargs: Any) -> Any:
        self.calls.append({"dest": dest, **kwargs})
        if self.error is not None:
            raise self.error
        path = Path(dest) / f"prod-{self.stamps.pop(0)}.tar.zst"
        path.write_bytes(b"archive")
        return export.ExportResult(path=str(path), destination=dest, plan=(), bytes=7)


def _values(path: Path) -> dict[str, float]:
    return metrics.previous_values(path.read_text())


def test_a_run_exports_with_the_lock_wait_and_records_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeExport(["20261122T030000Z"])
    monkeypatch.setattr(export, "export", fake)
    dest = tmp_path / "backups"  # made by the run
    options = RunOptions(str(dest), only=("redis",), lock_wait=90, metrics=str(tmp_path / "m.prom"))
    report = scheduled.run(CLUSTER, options, clock=lambda: 1000.0)
    assert fake.calls[0]["lock_wait"] == 90 and fake.calls[0]["only"] == ("redis",)
    assert report.archive == str(dest / "prod-20261122T030000Z.tar.zst")
    assert report.retention is None
    assert _values(tmp_path / "m.prom")["last_success_timestamp_seconds"] == 1000.0
    assert _values(tmp_path / "m.prom")["last_archive_bytes"] == 7


def test_a_locked_run_records_failure_and_keeps_the_last_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prom = tmp_path / "m.prom"
    options = RunOptions(str(tmp_path), metrics=str(prom))
    monkeypatch.setattr(export, "export", FakeExport(["20261122T030000Z"]))
    scheduled.run(CLUSTER, options, clock=lambda: 1000.0)
    monkeypatch.setattr(export, "export", FakeExport([], error=LockHeld({"id": "x"}, 30)))
    with pytest.raises(LockHeld):
        scheduled.run(CLUSTER, options, clock=lambda: 2000.0)
    values = _values(prom)
    assert values["last_run_success"] == 0
    assert values["last_run_timestamp_seconds"] == 2000.0
    assert values["last_success_timestamp_seconds"] == 1000.0


def test_retention_verifies_the_others_and_deletes_only_older_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for stamp in ("20261119T030000Z", "20261120T030000Z", "20261121T030000Z"):
        (tmp_path / f"prod-{stamp}.tar.zst").write_bytes(b"old")
    (tmp_path / "other-20261101T030000Z.tar.zst").write_bytes(b"not ours")
    bad = "prod-20261120T030000Z.tar.zst"
    monkeypatch.setattr(export, "export", FakeExport(["20261122T030000Z"]))
    checked: list[str] = []

    def verifier(path: Path) -> str | None:
        checked.append(path.name)
        return "MANIFEST.json: truncated" if path.name == bad else None

    options = RunOptions(str(tmp_path), keep=2, metrics=str(tmp_path / "m.prom"))
    report = scheduled.run(CLUSTER, options, verifier=verifier)
    assert "prod-20261122T030000Z.tar.zst" not in checked  # export verified it already
    assert "other-20261101T030000Z.tar.zst" not in checked
    left = sorted(p.name for p in tmp_path.glob("*.tar.zst"))
    assert left == [
        "other-20261101T030000Z.tar.zst",
        "prod-20261120T030000Z.tar.zst",
        "prod-20261121T030000Z.tar.zst",
        "prod-20261122T030000Z.tar.zst",
    ]
    assert report.retention is not None and report.retention.deleted == (
        "prod-20261119T030000Z.tar.zst",
    )
    assert any(bad in p and "never deleted" in p for p in report.problems)
    assert _values(tmp_path / "m.prom")["invalid_archives"] == 1


def test_bad_options_are_refused_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeExport([])
    monkeypatch.setattr(export, "export", fake)
    with pytest.raises(UsageError, match="at least 1"):
        scheduled.run(CLUSTER, RunOptions(str(tmp_path), keep=0, metrics=str(tmp_path / "m.prom")))
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="not a directory"):
        scheduled.run(CLUSTER, RunOptions(str(tmp_path / "file"), metrics=str(tmp_path / "m.prom")))
    assert fake.calls == []
