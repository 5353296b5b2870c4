"""Secrets kato is told where to find (a key's passphrase, a sudo password): read from a file
only its owner can read, or from an environment variable; never from the command line."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from kato.errors import UsageError


def read(
    file: str | None, variable: str | None, what: str, env: Mapping[str, str] = os.environ
) -> str | None:
    """The secret named by `{what}_file` or `{what}_env` (None when neither is set)."""
    if variable:
        value = env.get(variable)
        if not value:
            raise UsageError(
                f"{what}_env names ${variable}, which is not set or empty",
                hint=f"export {variable} before running kato, or use {what}_file",
            )
        return value
    if file:
        return _from_file(str(Path(file).expanduser()), what)
    return None


@lru_cache(maxsize=8)
def _from_file(path: str, what: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise UsageError(
            f"{what}_file: cannot open {path}: {exc.strerror}",
            hint="write the secret there (one line, mode 0600), or fix the path",
        ) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            raise UsageError(
                f"{what}_file: {path} must be a regular file readable by its owner only "
                f"(it is mode {stat.S_IMODE(info.st_mode):o})",
                hint=f"chmod 600 {path}",
            )
        if info.st_uid not in (0, os.geteuid()):
            raise UsageError(f"{what}_file: {path} is owned by uid {info.st_uid}, not you or root")
        text = handle.read(4096).decode(errors="replace")
    secret = text.splitlines()[0] if text else ""
    if not secret:
        raise UsageError(f"{what}_file: {path} is empty", hint="write the secret on its first line")
    return secret
