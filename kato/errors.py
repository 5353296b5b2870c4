"""KatoError and its subclasses: what went wrong, with the data and a hint for the next step."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes (docs/exit-codes.md)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    PARTIAL = 3
    LOCKED = 4
    UNREACHABLE = 5
    ARCHIVE_INVALID = 6
    PREFLIGHT = 7
    INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT (128 + 2)


class KatoError(Exception):
    """An error kato explains to its user: a message, a hint, an exit code."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(KatoError):
    """The command line or a configuration names something that cannot be."""

    exit_code = ExitCode.USAGE


class PreflightRefused(KatoError):
    """A check before any change said no: nothing was changed."""

    exit_code = ExitCode.PREFLIGHT


class NotRoot(PreflightRefused):
    def __init__(self, action: str) -> None:
        super().__init__(
            f"{action} needs root (it creates network devices, mounts and containers)",
            hint="run it again as root, e.g. with sudo",
        )


class ToolMissing(PreflightRefused):
    def __init__(self, tool: str, package: str) -> None:
        super().__init__(
            f"{tool} is not installed",
            hint=f"install it with: apt-get install -y {package}",
        )
        self.tool = tool
        self.package = package


class AddressRangeTaken(PreflightRefused):
    def __init__(self, subnet: str, holder: str) -> None:
        super().__init__(
            f"address range {subnet} is already in use on this machine ({holder})",
            hint="choose a free range with --subnet, e.g. --subnet 198.18.42.0/24",
        )
        self.subnet = subnet
        self.holder = holder


class CommandFailed(KatoError):
    """A local command exited non-zero or timed out."""

    def __init__(self, argv: tuple[str, ...], returncode: int | None, stderr: str) -> None:
        shown = " ".join(argv)
        what = "timed out" if returncode is None else f"exited {returncode}"
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        super().__init__(f"`{shown}` {what}: {detail}")
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class NodeUnreachable(KatoError):
    """A node did not answer in the named phase (connect, banner, auth, command)."""

    exit_code = ExitCode.UNREACHABLE

    def __init__(self, node: str, phase: str, detail: str, hint: str | None = None) -> None:
        super().__init__(f"{node}: {phase} failed: {detail}", hint=hint)
        self.node = node
        self.phase = phase
        self.detail = detail


class HostKeyRefused(KatoError):
    """A node's SSH host key is unknown, changed, or kato's known_hosts cannot be trusted.
    Raised before any command runs on the node."""

    exit_code = ExitCode.UNREACHABLE

    def __init__(self, node: str, reason: str, fingerprint: str | None, hint: str) -> None:
        shown = f" (offered key {fingerprint})" if fingerprint else ""
        super().__init__(f"{node}: host key refused: {reason}{shown}", hint=hint)
        self.node = node
        self.reason = reason
        self.fingerprint = fingerprint


def shown_command(argv: tuple[str, ...]) -> str:
    """A command as a message shows it: a program kato sends inline (`python3 -c SCRIPT`) is
    shown by its size, not its text, so the message stays one readable line."""
    return " ".join(
        f"<{a.count(chr(10)) + 1}-line script>" if "\n" in a or len(a) > 200 else a for a in argv
    )


class RemoteCommandFailed(KatoError):
    """A command on a node exited non-zero."""

    def __init__(self, node: str, argv: tuple[str, ...], status: int, stderr: str) -> None:
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        # the cause first (what the node said), the command after
        super().__init__(f"{node}: {detail} (exit {status} of `{shown_command(argv)}`)")
        self.node = node
        self.argv = argv
        self.status = status
        self.stderr = stderr


class NodeOutputTooLarge(KatoError):
    """A command on a node sent more output than kato keeps in memory: a hostile or broken node
    must not grow kato's memory without bound (bulk data streams to disk instead)."""

    def __init__(self, node: str, argv: tuple[str, ...], limit: int) -> None:
        super().__init__(
            f"{node}: `{shown_command(argv)}` sent more than {limit >> 20} MiB of output, "
            "the most kato keeps in memory for one command; it was stopped",
            hint="check what runs on that node (a replaced program sends what kato's never "
            "would); for `kato run`, write large output to a file on the node instead",
        )
        self.node = node
        self.argv = argv
        self.limit = limit


class LockLost(KatoError):
    """This operation's lock was broken (or taken): it stopped before its next command."""

    def __init__(self, lock_id: str, broken: dict[str, object] | None, otherwise: str) -> None:
        how = f"was broken by {broken.get('by')}" if broken else otherwise
        super().__init__(
            f"this operation's cluster lock {lock_id} {how}: it stopped before its next "
            "command on a node",
            hint="see `kato history` for what it did, and `kato lock status`",
        )
        self.lock_id, self.broken = lock_id, broken


class LockHeld(KatoError):
    """Another operation holds the cluster lock."""

    exit_code = ExitCode.LOCKED

    def __init__(self, holder: dict[str, object], waited: float) -> None:
        waited_text = f" (waited {waited:g}s)" if waited else ""
        super().__init__(
            f"the cluster is locked by {holder.get('owner')} (pid {holder.get('pid')}) running "
            f"`{holder.get('command')}` since {holder.get('started_at')}, lock id "
            f"{holder.get('id')}{waited_text}",
            hint="wait for it (--lock-wait 10m), or if that process is gone for good: "
            f"kato lock break {holder.get('id')}",
        )
        self.holder = holder


class Interrupted(KatoError):
    """Ctrl-C stopped a change: what was in flight was undone (the message says per node)."""

    exit_code = ExitCode.INTERRUPTED


def outcome_exit(succeeded: int, failures: Iterable[int], not_reached: int = 0) -> ExitCode:
    """The one rule from per-node outcomes to an exit code: 0 when nothing failed; 3 (partial)
    when some nodes failed while others succeeded or were never reached; else 5 when every
    failure was an unreachable node, 1 otherwise."""
    codes = set(failures)
    if not codes:
        return ExitCode.OK
    if succeeded or not_reached:
        return ExitCode.PARTIAL
    return ExitCode.UNREACHABLE if codes == {ExitCode.UNREACHABLE} else ExitCode.FAILED
