"""kato's lines in a crontab's text: found, added and removed, every other byte left alone."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from crontab import CronTab

TAG = "kato-data-export:"


@dataclass(frozen=True)
class Entry:
    """One kato entry of the crontab, as `list` shows it."""

    id: str
    cron: str
    command: str
    enabled: bool
    dest: str | None
    keep: int | None
    log: str | None


def parse_entries(text: str) -> list[Entry]:
    """kato's entries in a crontab's text; every other line is not kato's."""
    return [e for line in text.splitlines() if (e := entry_line(line)) is not None]


def entry_line(line: str) -> Entry | None:
    if TAG not in line:
        return None
    jobs = list(CronTab(tab=line))
    if len(jobs) != 1 or not str(jobs[0].comment).startswith(TAG):
        return None
    job = jobs[0]
    argv = _split(str(job.command))
    return Entry(
        id=str(job.comment)[len(TAG) :],
        cron=str(job.slices),
        command=str(job.command),
        enabled=bool(job.is_enabled()),
        dest=_value(argv, "--dest"),
        keep=int(keep) if (keep := _value(argv, "--keep") or "").isdigit() else None,
        log=_value(argv, ">>"),
    )


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return []


def _value(argv: list[str], option: str) -> str | None:
    return argv[argv.index(option) + 1] if option in argv[:-1] else None


def with_line(text: str, line: str) -> str:
    """The crontab with one more line at the end; every other byte unchanged."""
    if text and not text.endswith("\n"):
        text += "\n"
    return text + line


def without_entry(text: str, entry: str) -> str:
    """The crontab without kato's entry `entry`; every other line byte-identical."""
    lines = text.splitlines(keepends=True)
    return "".join(
        line for line in lines if not ((e := entry_line(line)) is not None and e.id == entry)
    )
