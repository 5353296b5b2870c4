"""An install plan's steps grouped into the items a person reads in --dry-run: one line per
node per role installed (with its artifact's size), per unit set, per switch of `current`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from kato.plan import Step

ROLE_STEP = re.compile(
    r"^(upload the (?P<a>\S+) artifact|verify the (?P<b>\S+) artifact on the node|"
    r"unpack (?P<c>\S+) \S+|run the (?P<d>\S+) install hook|mark (?P<e>\S+) \S+ installed)$"
)
UNIT = "install unit "
RENAME = "rename it into place atomically"


def size(count: int) -> str:
    return f"{count / 1024:.0f} KiB" if count >= 1024 else f"{count} B"


def itemized(
    steps: Sequence[Step], version: str, sizes: Mapping[str, int], current: str | None
) -> list[Step]:
    """The same steps, each with the item it belongs to."""
    units = [s.description.removeprefix(UNIT) for s in steps if s.description.startswith(UNIT)]
    switch = f"switch current to {version}" + (f" (from {current})" if current else "")
    out = []
    for step in steps:
        item = ""
        found = ROLE_STEP.match(step.description)
        if found:
            role = next(v for v in found.groupdict().values() if v)
            known = sizes.get(role)
            item = f"install {role} {version}" + (f" ({size(known)})" if known else "")
        elif step.description.startswith(UNIT):
            item = "install units " + ", ".join(units)
        elif step.description in (f"switch current to {version}", RENAME):
            item = switch
        elif step.description in ("reload systemd", "enable the role units"):
            item = "reload systemd and enable the role units"
        out.append(replace(step, item=item) if item else step)
    return out
