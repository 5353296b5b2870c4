"""The node agent: kato's node-side programs (real files, standard library only) shipped to a
node once per run, cached there by content hash under /var/lib/kato/agent/<digest>/, and run
with argv (`python3 /var/lib/kato/agent/<digest>/PROGRAM ARGS...`).

A call runs at once when the node has this kato's bundle (one round trip); when it has not,
the bundle is shipped (one tar stream, unpacked under a temporary name and renamed into place)
and the call is made again. What a run knows to be on a node is kept per connection, so each
node is shipped to at most once per run.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
import threading
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from weakref import WeakKeyDictionary

from kato.errors import RemoteCommandFailed
from kato.remote import layout
from kato.transport.base import CommandResult, Transport

log = logging.getLogger("kato.remote")
HERE = Path(__file__).parent
# name on the node -> the file in this checkout; a node program imports the others by name
PROGRAMS: Mapping[str, Path] = {
    "node_facts.py": HERE / "node_facts.py",
    "patch_agent.py": HERE.parent / "patch" / "agent.py",
    "patch_records.py": HERE.parent / "patch" / "records.py",
    "datadirs.py": HERE / "datadirs.py",
    "treesum.py": HERE / "treesum.py",
    "quota.py": HERE / "quota.py",
    "upgrade_agent.py": HERE.parent / "upgrade" / "agent.py",
    "safe_write.py": HERE / "safe_write.py",  # the patch agent's writes
    "node_data.py": HERE / "node_data.py",  # data export and import
    "node_member.py": HERE / "node_member.py",  # import's check of a member, as it stages
    "tree_safety.py": HERE / "tree_safety.py",  # ... whether a tree is safe to extract
    "tar_walk.py": HERE / "tar_walk.py",  # ... a tar's entries, read from its headers
    "role_cycle.py": HERE / "role_cycle.py",  # change, then wait healthy, in one call
}
MISSING = "can't open file"  # what python3 says when the program is not there
# Unpacked under a temporary name, then renamed into place; a broken copy there (we ship only
# when a program was missing) is renamed aside first and removed.
SHIP = (
    'set -e; umask 022; mkdir -p "${1%/*}"; '
    'if [ -L "${1%/*}" ]; then echo "${1%/*} is a symbolic link: refusing it" >&2; exit 1; fi; '
    't=$(mktemp -d "$1.tmp.XXXXXX"); '
    'tar -xf - -C "$t" --no-same-owner; chmod 755 "$t"; '
    'if ! mv -T "$t" "$1" 2>/dev/null; then '
    'mv -T "$1" "$t.old"; mv -T "$t" "$1"; rm -rf "$t.old"; fi'
)


class NodeAgent:
    def __init__(self, programs: Mapping[str, Path] = PROGRAMS, base: str = layout.AGENT) -> None:
        self.programs = dict(programs)
        self.base = base
        self._present: WeakKeyDictionary[Transport, bool] = WeakKeyDictionary()
        self._guard = threading.Lock()
        self.shipped: list[str] = []  # the nodes shipped to, in order (tests count them)

    @cached_property
    def bundle(self) -> bytes:
        """The programs as one tar, byte for byte the same for the same files."""
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name in sorted(self.programs):
                data = self.programs[name].read_bytes()
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        return raw.getvalue()

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.bundle).hexdigest()[:16]

    @property
    def directory(self) -> str:
        return f"{self.base}/{self.digest}"

    def argv(self, program: str, *args: str) -> tuple[str, ...]:
        """The command that runs `program` of the agent on a node (once it is there)."""
        if program not in self.programs:
            raise ValueError(f"no node program {program!r}")
        return ("python3", "-S", f"{self.directory}/{program}", *args)  # -S: stdlib only, fast

    def ensure(self, transport: Transport) -> None:
        """Ship the bundle unless this run knows the node has it (asks the node at most once)."""
        if self._present.get(transport):
            return
        files = [f"{self.directory}/{name}" for name in sorted(self.programs)]
        here = transport.run(("ls", "--", *files), check=False, timeout=30)
        if not here.ok:
            self._ship(transport)
        self._present[transport] = True

    def call(
        self,
        transport: Transport,
        program: str,
        *args: str,
        stdin: bytes | None = None,
        timeout: float | None = 60.0,
    ) -> CommandResult:
        """Run a node program; ship the bundle first if the node turns out not to have it."""
        argv = self.argv(program, *args)
        result = transport.run(argv, stdin=stdin, timeout=timeout, check=False)
        if result.status == 2 and MISSING in result.stderr and self.directory in result.stderr:
            self._ship(transport)
            result = transport.run(argv, stdin=stdin, timeout=timeout, check=False)
        self._present[transport] = True
        return result

    def _ship(self, transport: Transport) -> None:
        with self._guard:
            self.shipped.append(transport.node)
        log.info("%s: shipping the node agent %s", transport.node, self.digest)
        done = transport.run(
            ("sh", "-c", SHIP, "sh", self.directory), stdin=self.bundle, check=False, timeout=120
        )
        if not done.ok:
            raise RemoteCommandFailed(transport.node, done.argv, done.status, done.stderr)


AGENT = NodeAgent()
