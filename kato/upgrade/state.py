"""The record of the upgrade in progress (or the last one), kept on the core node in
/var/lib/kato/upgrade/state.json (format 1, docs/upgrade.md): what `kato upgrade status` shows,
what re-running an interrupted upgrade resumes from and what `kato upgrade rollback` undoes."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from kato import pause
from kato.errors import KatoError
from kato.remote import safe_write
from kato.transport.base import Transport

PATH = "/var/lib/kato/upgrade/state.json"
FORMAT = 1
FINISHED = ("done", "rolled back")


@dataclass(frozen=True)
class UpgradeState:
    """One upgrade: from and to, its phase, the pre-upgrade export and what it measured."""

    id: str
    kind: str  # in-place, graceful
    source: str  # the release the cluster ran before
    target: str
    digest: str
    phase: str  # staged, exported, stopping, activating, migrating, starting, done, ...
    result: str | None = None  # None while it runs or was interrupted; done; rolled back; ...
    backup: str | None = None  # the verified pre-upgrade export (a local path)
    backup_roles: tuple[str, ...] = ()
    migrated: tuple[str, ...] = ()  # migrations that ran (their data needs the backup to undo)
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    downtime: float | None = None
    detail: str = ""
    stateless: bool = False  # graceful --stateless: the data services are left alone
    taken_over: tuple[str, ...] = ()  # graceful: the serving nodes done, one at a time
    format: int = FORMAT

    @property
    def unfinished(self) -> bool:
        return self.result is None

    def moved(self, phase: str, **changes: Any) -> UpgradeState:
        return replace(self, phase=phase, updated=time.time(), **changes)


def read(core: Transport) -> UpgradeState | None:
    result = core.run(("cat", PATH), check=False, timeout=30)
    if not result.ok:
        return None
    try:
        raw = json.loads(result.stdout)
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}")
        raw["backup_roles"] = tuple(raw.get("backup_roles", ()))
        raw["migrated"] = tuple(raw.get("migrated", ()))
        raw["taken_over"] = tuple(raw.get("taken_over", ()))
        return UpgradeState(**raw)
    except (ValueError, TypeError) as exc:
        raise KatoError(
            f"{core.node}:{PATH} is not an upgrade record kato can read ({exc})",
            hint="look at it; move it aside if it is not needed, then run the command again",
        ) from None


def write(core: Transport, state: UpgradeState) -> None:
    """Record `state` (fsynced, renamed into place); a test may pause kato at each phase."""
    text = json.dumps(asdict(state), indent=2, sort_keys=True) + "\n"
    # never through a link planted at the record or its directory (kato/remote/safe_write.py)
    stdin = safe_write.prelude() + text.encode()
    core.run(safe_write.argv(PATH, 0o640), stdin=stdin, timeout=60)
    pause.point(f"upgrade {state.phase}")


def failed(core: Transport, fallback: UpgradeState, message: str) -> UpgradeState:
    """After a failure: the record as far as the upgrade got (`fallback` if none), marked
    failed, so `kato upgrade status` says so even if the rollback that follows is cut short."""
    rec = (read(core) or fallback).moved(f"failed: {message[:200]}")
    write(core, rec)
    return rec
