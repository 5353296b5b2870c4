"""How a login other than root runs commands: `sudo -n`, or `sudo -S` with the password on
the command's stdin (never in argv, so never in `ps`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kato.errors import NodeUnreachable
from kato.transport.base import CommandResult

NO_PASSWORD = "sudo -n -- "
WITH_PASSWORD = "sudo -k -S -p '' -- "  # -k: sudo reads the password every time, so it can
# never be left over as input of the command


def choose_sudo(
    node: str,
    user: str,
    password: str | None,
    run: Callable[[Sequence[str], str], CommandResult],
) -> tuple[str, str | None]:
    """The prefix of every command, and the password to write to its stdin first (or None).
    `run(argv, prefix)` runs argv on the node behind that prefix."""
    if user == "root":
        return "", None
    if run(("sudo", "-k", "-n", "true"), "").ok:
        return NO_PASSWORD, None
    if password is None:
        return NO_PASSWORD, None  # each command then fails with sudo's own message: the fix
    tried = run(("true",), WITH_PASSWORD)
    if not tried.ok:
        raise NodeUnreachable(
            node,
            "sudo",
            f"sudo as {user} did not accept the password: {tried.error_line}",
            hint="check the file or variable ssh.sudo_password_file/_env names, and that "
            f"{user} may use sudo on the node",
        )
    return WITH_PASSWORD, password
