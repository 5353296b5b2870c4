"""A role's `export:` section: how each of its data dirs leaves and re-enters the cluster."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

KINDS = ("tree", "stream")


@dataclass(frozen=True)
class ExportSpec:
    """tree: kato tars the data dir itself. stream: the role's own tool writes a dump to
    stdout (`dump`), loads one from stdin into an empty data dir given as its last argument
    (`load`, with the role stopped), and optionally proves one restores (`check`, stdin)."""

    kind: str
    dump: tuple[str, ...] = ()
    load: tuple[str, ...] = ()
    check: tuple[str, ...] = ()


Report = Callable[[str, str], None]


def parse_export(
    value: object, data_dirs: Mapping[str, str], add: Report
) -> dict[str, ExportSpec] | None:
    """{data dir name: spec} from role.yaml's `export:` ({} for a role without data to keep)."""
    if not isinstance(value, dict):
        add("export", "must be a mapping of data dir name to `tree` or {dump, load[, check]}")
        return None
    specs: dict[str, ExportSpec] = {}
    for name, raw in value.items():
        where = f"export.{name}"
        if name not in data_dirs:
            known = ", ".join(data_dirs) or "none"
            add(where, f"not one of the role's data_dirs ({known})")
        elif raw == "tree":
            specs[name] = ExportSpec("tree")
        elif isinstance(raw, dict):
            spec = _stream(raw, where, add)
            if spec is not None:
                specs[name] = spec
        else:
            add(where, "must be `tree` or a mapping with dump, load and optional check")
    return specs if len(specs) == len(value) else None


def _stream(raw: Mapping[object, object], where: str, add: Report) -> ExportSpec | None:
    unknown = sorted(str(k) for k in raw if k not in ("dump", "load", "check"))
    for key in unknown:
        add(f"{where}.{key}", "unknown key (known: dump, load, check)")
    commands = {}
    for key in ("dump", "load", "check"):
        argv = raw.get(key)
        if argv is None and key == "check":
            commands[key] = ()
        elif isinstance(argv, list) and argv and all(isinstance(a, str) and a for a in argv):
            commands[key] = tuple(argv)
        else:
            add(f"{where}.{key}", "must be a non-empty argv list of strings")
    if unknown or len(commands) < 3:
        return None
    return ExportSpec("stream", commands["dump"], commands["load"], commands["check"])
