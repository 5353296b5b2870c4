"""Turn KatoError into a message, a hint and the documented exit code (tracebacks with --debug)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from kato import output
from kato.errors import ExitCode, KatoError
from kato.progress import listen

debug = False


@contextmanager
def reported() -> Iterator[None]:
    """Run a command body; a KatoError becomes its message, hint and exit code."""
    listen(output.warn)
    try:
        yield
    except KatoError as exc:
        if debug:
            raise
        output.error(exc.message, exc.hint)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        output.error("interrupted", None)
        raise typer.Exit(int(ExitCode.FAILED)) from None
