"""The one error of an archive that cannot be trusted (exit 6), shared by verify, export's
read-back and import's checks."""

from __future__ import annotations

from kato.errors import ExitCode, KatoError


class ArchiveInvalid(KatoError):
    """The archive is incomplete, corrupt or unsafe; `member` is the first bad one."""

    exit_code = ExitCode.ARCHIVE_INVALID

    def __init__(self, path: str, member: str, problem: str) -> None:
        super().__init__(
            f"{path}: {member}: {problem}",
            hint="this archive cannot be trusted: use another one "
            "(`kato data backups DIR` lists archives with their verify status)",
        )
        self.path, self.member, self.problem = path, member, problem
