"""Repositories kato reads (releases, patches): a directory, file:// or https:// location,
small YAML manifests read whole, and artifacts streamed into a local file only once verified.

Formats: docs/release-repository.md and docs/patch.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, unquote, urlsplit

from kato import yamldoc
from kato.errors import KatoError, UsageError

TIMEOUT = 30.0
CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 1 << 20


class RepositoryUnreachable(KatoError):
    """A file of the repository could not be read (missing, refused, timed out)."""

    def __init__(self, location: str, detail: str) -> None:
        super().__init__(
            f"cannot read {location}: {detail}",
            hint="check the repository's location in the cluster file",
        )
        self.location = location
        self.detail = detail


def location(repo: str | Path, relative: str) -> str:
    """Where a file of the repository is, as a path or URL (for messages)."""
    base = _base(repo)
    if isinstance(base, Path):
        return str(base / relative)
    return base + quote(relative)


def _base(repo: str | Path) -> Path | str:
    """A local directory as a Path, or an https URL ending in '/'."""
    if isinstance(repo, Path):
        return repo
    parts = urlsplit(repo)
    if parts.scheme == "":
        return Path(repo)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"{repo}: a file:// URL must name a local path (file:///PATH)")
        return Path(unquote(parts.path))
    if parts.scheme == "https" and parts.hostname:
        return repo if repo.endswith("/") else repo + "/"
    raise UsageError(
        f"{repo} is not a repository location",
        hint="use a directory, a file:///PATH URL or an https:// URL",
    )


@contextlib.contextmanager
def open_file(repo: str | Path, relative: str) -> Iterator[BinaryIO]:
    base = _base(repo)
    where = location(repo, relative)
    if isinstance(base, Path):
        try:
            handle = (base / relative).open("rb")
        except OSError as exc:
            raise RepositoryUnreachable(where, exc.strerror or str(exc)) from None
        with handle:
            yield handle
        return
    try:
        response = urllib.request.urlopen(base + quote(relative), timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        raise RepositoryUnreachable(where, f"HTTP {exc.code} {exc.reason}") from None
    except OSError as exc:  # URLError, timeouts, refused connections
        raise RepositoryUnreachable(where, str(getattr(exc, "reason", exc))) from None
    with response:
        if urlsplit(response.geturl()).scheme != "https":
            raise RepositoryUnreachable(where, f"redirected away from https: {response.geturl()}")
        yield response


def read_bytes(
    repo: str | Path, relative: str, invalid: Callable[[str, list[str]], KatoError]
) -> bytes:
    """A manifest's bytes, read whole (at most MAX_MANIFEST_BYTES); `invalid` if larger."""
    with open_file(repo, relative) as handle:
        data = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise invalid(str(repo), [f"{relative}: larger than {MAX_MANIFEST_BYTES} bytes"])
    return data


def parse_yaml(
    data: bytes, repo: str, relative: str, invalid: Callable[[str, list[str]], KatoError]
) -> object:
    """The YAML document in `data`; `invalid(repo, problems)` if it is not YAML."""
    try:
        return yamldoc.load(data)
    except yamldoc.YamlProblem as exc:
        raise invalid(repo, [f"{relative}: not valid YAML: {exc}"]) from None


def read_yaml(
    repo: str | Path, relative: str, invalid: Callable[[str, list[str]], KatoError]
) -> object:
    """A manifest, read whole (at most MAX_MANIFEST_BYTES); `invalid(repo, problems)` if bad."""
    return parse_yaml(read_bytes(repo, relative, invalid), str(repo), relative, invalid)


def fetch_verified(
    repo: str | Path,
    relative: str,
    final: Path,
    expected: tuple[int, str],
    mismatch: Callable[[str, str, str], KatoError],
) -> Path:
    """Stream a file of the repository to `final`, checking its (size, sha256) on the way.

    The file appears under its final name only once verified; on any failure nothing is left.
    `mismatch(what, expected, actual)` makes the error of a wrong size or sha256.
    """
    size_wanted, sha_wanted = expected
    try:
        fd, part = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    except OSError as exc:
        raise KatoError(f"cannot write into {final.parent}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as target, open_file(repo, relative) as source:
            size, digest = _copy(source, target, size_wanted, location(repo, relative))
            target.flush()
            os.fsync(target.fileno())
        if size != size_wanted:
            raise mismatch("size", f"{size_wanted} bytes", f"{size} bytes")
        if digest != sha_wanted:
            raise mismatch("sha256", sha_wanted, digest)
        os.replace(part, final)
        _fsync_dir(final.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        if isinstance(exc, OSError):  # reading the repository raises KatoErrors: this is here
            raise KatoError(f"cannot write {final}: {exc.strerror or exc}") from None
        raise
    return final


def _copy(source: BinaryIO, target: BinaryIO, limit: int, where: str) -> tuple[int, str]:
    """Copy in chunks, hashing; stop reading one byte past `limit` (the size is wrong then)."""
    digest = hashlib.sha256()
    size = 0
    while size <= limit:
        try:
            chunk = source.read(min(CHUNK, limit + 1 - size))
        except (OSError, http.client.HTTPException) as exc:
            raise RepositoryUnreachable(where, f"reading stopped: {exc}") from None
        if not chunk:
            break
        digest.update(chunk)
        target.write(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
