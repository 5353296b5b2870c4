"""Secrets come from an owner-only file or a named variable, never from elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from kato import secrets
from kato.errors import UsageError


def test_a_secret_from_a_0600_file_or_a_variable(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("s3cret pass\nignored\n")
    path.chmod(0o600)
    assert secrets.read(str(path), None, "ssh.sudo_password") == "s3cret pass"
    assert secrets.read(None, "PW", "ssh.sudo_password", {"PW": "x"}) == "x"
    assert secrets.read(None, None, "ssh.sudo_password") is None


def test_a_readable_file_or_an_unset_variable_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "open"
    path.write_text("pw\n")
    path.chmod(0o644)
    with pytest.raises(UsageError, match="readable by its owner only") as caught:
        secrets.read(str(path), None, "ssh.passphrase")
    assert caught.value.hint == f"chmod 600 {path}"
    with pytest.raises(UsageError, match=r"names \$PW, which is not set"):
        secrets.read(None, "PW", "ssh.passphrase", {})
