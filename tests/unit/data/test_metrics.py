"""The node_exporter textfile a scheduled run leaves: its text, and a failure keeping success."""

from __future__ import annotations

from pathlib import Path

from kato.data import metrics
from kato.data.metrics import Outcome

NAMES = (
    "last_run_timestamp_seconds",
    "last_success_timestamp_seconds",
    "last_run_success",
    "last_archive_bytes",
    "invalid_archives",
)


def test_a_success_writes_every_metric_with_help_and_type() -> None:
    text = metrics.render(Outcome("/srv/b", 1795000000.5, True, 123456, 1), {})
    lines = text.splitlines()
    for name in NAMES:
        full = f"kato_data_export_{name}"
        assert f"# TYPE {full} gauge" in lines
        assert any(line.startswith(f"# HELP {full} ") for line in lines)
    assert 'kato_data_export_last_run_timestamp_seconds{dest="/srv/b"} 1795000000.5' in lines
    assert 'kato_data_export_last_success_timestamp_seconds{dest="/srv/b"} 1795000000.5' in lines
    assert 'kato_data_export_last_run_success{dest="/srv/b"} 1' in lines
    assert 'kato_data_export_last_archive_bytes{dest="/srv/b"} 123456' in lines
    assert 'kato_data_export_invalid_archives{dest="/srv/b"} 1' in lines
    assert text.endswith("\n")


def test_a_failure_keeps_the_last_success_and_archive_size(tmp_path: Path) -> None:
    path = tmp_path / "textfile" / "kato_data_export.prom"
    metrics.write(path, Outcome("/srv/b", 1000.0, True, 2048, 0))
    metrics.write(path, Outcome("/srv/b", 2000.0, False))
    values = metrics.previous_values(path.read_text())
    assert values == {
        "last_run_timestamp_seconds": 2000.0,
        "last_success_timestamp_seconds": 1000.0,
        "last_run_success": 0.0,
        "last_archive_bytes": 2048.0,
        "invalid_archives": 0.0,
    }
    assert sorted(p.name for p in path.parent.iterdir()) == ["kato_data_export.prom"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_a_first_run_that_fails_reports_no_success_ever(tmp_path: Path) -> None:
    path = tmp_path / "kato_data_export.prom"
    metrics.write(path, Outcome("/srv/b", 2000.0, False))
    values = metrics.previous_values(path.read_text())
    assert values["last_success_timestamp_seconds"] == 0.0
    assert values["last_run_success"] == 0.0


def test_a_garbled_previous_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "kato_data_export.prom"
    path.write_bytes(b"\xff\xfe not a metric")
    metrics.write(path, Outcome("/srv/b", 5.0, True, 1))
    assert metrics.previous_values(path.read_text())["last_success_timestamp_seconds"] == 5.0


def test_the_dest_label_is_escaped() -> None:
    text = metrics.render(Outcome('/srv/"odd"\\dir', 1.0, True, 1), {})
    assert '{dest="/srv/\\"odd\\"\\\\dir"}' in text
