"""Import's staging where the archive does not allow sending members compressed (format 1, a
gzip archive, another layout): each member decompressed here from the archive's tar stream and
sent to its node, which writes it into the private staging dir; hashed on the way, so a member
changed since it was verified is refused before anything is switched."""

from __future__ import annotations

import tarfile
from collections.abc import Sequence
from pathlib import Path

from kato.data import archive
from kato.data.placement import Placement, private_dir
from kato.data.verify import HashingReader
from kato.errors import KatoError, NodeUnreachable
from kato.operation import Operation
from kato.progress import Progress
from kato.remote import safe_write
from kato.transport.pool import Connections

NOT_A_LINK = '[ ! -L "$1" ] || { echo "$1 is a symbolic link: refusing to switch it" >&2; exit 1; }'
# The staging dir ($1): private, a link planted at its name refused (placement.private_dir).
PRIVATE_DIR = "set -eu; umask 077; " + private_dir("$1", "stage into it")
STAGE_TREE = PRIVATE_DIR + (
    'mkdir -- "$2"; exec tar --extract --file=- --directory="$2" --numeric-owner --same-owner '
    "--preserve-permissions"
)
STAGE_DUMP = PRIVATE_DIR + (
    'cat >"$2"; printf "%s  %s\\n" "$3" "$2" | sha256sum --check --status || '
    '{ echo "the staged copy does not match the archive (sha256)" >&2; exit 1; }'
)


def stage(
    conns: Connections,
    op: Operation,
    path: Path,
    placements: Sequence[Placement],
    progress: Progress,
) -> None:
    """Each placement's member, in the archive's order, to its node."""
    by_name = {p.member.name: p for p in placements}
    with archive.reading(str(path)) as stream:
        tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 (closed with stream)
        for info in archive.members(tar):
            placement = by_name.get(info.name)
            if placement is None:
                continue
            extracted = tar.extractfile(info)
            assert extracted is not None
            _stage_one(conns, op, placement, HashingReader(extracted), progress)
        while stream.read(1 << 20):
            pass


def _stage_one(
    conns: Connections, op: Operation, p: Placement, reader: HashingReader, progress: Progress
) -> None:
    node, member = p.target.node, p.member
    progress.step(f"{node}: staging {member.name} in {p.staging_dir}")
    checked = conns.get(node).run(
        safe_write.check_argv(p.parent), stdin=safe_write.prelude(), check=False
    )
    if checked.ok:
        checked = conns.get(node).run(("sh", "-c", NOT_A_LINK, "sh", p.target.path), check=False)
    if not checked.ok:
        raise KatoError(
            f"{node}: {checked.error_line}",
            hint="nothing was switched; make the data dir's parent a real directory of root's",
        )
    if member.type == "tree":
        argv: tuple[str, ...] = ("sh", "-c", STAGE_TREE, "sh", p.staging_dir, p.staged)
    else:
        argv = ("sh", "-c", STAGE_DUMP, "sh", p.staging_dir, p.staged, member.sha256)
    done = conns.get(node).stream_in(argv, reader)  # type: ignore[arg-type]
    reader.drain()
    if reader.sha.hexdigest() != member.sha256:
        raise KatoError(
            f"{member.name} changed since it was verified",
            hint="the archive file was modified during the import; nothing was switched",
        )
    if done.status < 0:
        raise NodeUnreachable(node, "transfer", "the connection closed while staging")
    if not done.ok:
        last = done.error_line
        raise KatoError(
            f"{node}: staging {member.name} failed: {last}",
            hint="nothing was switched; fix the cause and import again",
        )
    op.step(node, f"stage {member.name} in {p.staged}", None, "ok", done.seconds, bytes=member.size)
