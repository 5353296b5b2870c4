"""The outcome of a scheduled export as a node_exporter textfile metric, written atomically."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kato.errors import KatoError
from kato.remote import safe_write

DEFAULT_PATH = "/var/lib/node_exporter/textfile_collector/kato_data_export.prom"
PREFIX = "kato_data_export_"
HELP = {
    "last_run_timestamp_seconds": "Unix time the last scheduled kato data export ended.",
    "last_success_timestamp_seconds": "Unix time of the last scheduled export that succeeded.",
    "last_run_success": "1 if the last scheduled export succeeded, else 0.",
    "last_archive_bytes": "Size in bytes of the archive of the last successful export.",
    "invalid_archives": "Archives in the destination that failed verification at the last run.",
}
_SAMPLE = re.compile(r"\A(?P<name>[a-z_]+)(?:\{[^}]*\})? (?P<value>\S+)\Z")


@dataclass(frozen=True)
class Outcome:
    dest: str
    finished: float  # Unix time
    success: bool
    archive_bytes: int | None = None  # the new archive, when the run succeeded
    invalid_archives: int | None = None  # None: retention did not run


def previous_values(text: str) -> dict[str, float]:
    """The samples of an earlier metric file, by name without the prefix."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match and match["name"].startswith(PREFIX):
            try:
                values[match["name"][len(PREFIX) :]] = float(match["value"])
            except ValueError:
                continue
    return values


def render(outcome: Outcome, previous: dict[str, float]) -> str:
    """The metric file: a failed run keeps the last success's time and archive size."""
    values = {
        "last_run_timestamp_seconds": outcome.finished,
        "last_success_timestamp_seconds": outcome.finished
        if outcome.success
        else previous.get("last_success_timestamp_seconds", 0.0),
        "last_run_success": 1.0 if outcome.success else 0.0,
        "last_archive_bytes": float(outcome.archive_bytes)
        if outcome.success and outcome.archive_bytes is not None
        else previous.get("last_archive_bytes", 0.0),
        "invalid_archives": float(outcome.invalid_archives)
        if outcome.invalid_archives is not None
        else previous.get("invalid_archives", 0.0),
    }
    label = '{dest="' + _escape(outcome.dest) + '"}'
    lines: list[str] = []
    for name, value in values.items():
        lines += [
            f"# HELP {PREFIX}{name} {HELP[name]}",
            f"# TYPE {PREFIX}{name} gauge",
            f"{PREFIX}{name}{label} {value:.17g}",
        ]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write(path: Path, outcome: Outcome) -> None:
    """Write the metric file via a temporary file and a rename: a reader never sees half."""
    try:
        previous = previous_values(path.read_text())
    except (OSError, UnicodeDecodeError):
        previous = {}
    # a new file under an unpredictable name, renamed over the metric; never through a link
    # planted at the metric's path or in its directories
    try:
        safe_write.write_file(
            str(path), [render(outcome, previous).encode()], 0o644, create_dirs=0o755
        )
    except safe_write.Unsafe as exc:
        raise KatoError(
            f"the metric file was not written: {exc}",
            hint="remove what is there (or name another --metrics file) and run again",
        ) from None
