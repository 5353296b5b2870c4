"""`kato lock status|break` and `kato history`."""

from __future__ import annotations

import typer

from kato import output
from kato.cli.common import JSON, load_cluster
from kato.cli.errors import reported

app = typer.Typer(help="The cluster lock on the core node.", no_args_is_help=True)


@app.command()
def status(as_json: bool = JSON) -> None:
    """Who holds the cluster lock, since when, and whether its heartbeat is live."""
    from kato import history as journal_view

    with reported():
        state = journal_view.lock_status(load_cluster())
    if as_json:
        output.document(state)
        return
    if state.record is None:
        output.line("the cluster is not locked")
        return
    r = state.record
    health = "live" if state.alive else "expired (its holder is gone; the next command takes it)"
    output.line(f"locked by {r.get('owner')} pid {r.get('pid')} running `{r.get('command')}`")
    output.line(
        f"id {r.get('id')}, since {r.get('started_at')}, last heartbeat "
        f"{r.get('heartbeat_at')}, TTL {r.get('ttl')}s: {health}"
    )


@app.command("break")
def break_(lock_id: str = typer.Argument(..., metavar="ID", help="The lock id to remove.")) -> None:
    """Remove the lock with this ID (use only when its holder is gone for good)."""
    from kato import history as journal_view

    with reported():
        broken = journal_view.break_lock(load_cluster(), lock_id)
    owner = broken.record.get("owner")
    if broken.removed:
        output.info(f"lock {lock_id} of {owner} removed")
    else:
        output.info(
            f"lock {lock_id} of {owner} marked broken: its holder is still alive (heartbeat "
            "live); it stops before its next command on a node, and then (or once its "
            "heartbeat expires) another operation may take the lock"
        )


def history(
    limit: int = typer.Option(20, "--limit", help="How many journal entries."),
    as_json: bool = JSON,
) -> None:
    """The journal of operations on the cluster (newest last)."""
    from kato import history as journal_view

    with reported():
        entries = journal_view.history(load_cluster(), limit)
    if as_json:
        output.document(entries)
        return
    rows = [
        (
            e.get("time", ""),
            e.get("operation", ""),
            e.get("event", ""),
            e.get("node", ""),
            e.get("step") or " ".join(e.get("command") or []),
            str(e.get("result", "")),
        )
        for e in entries
    ]
    output.table(("TIME", "OPERATION", "EVENT", "NODE", "WHAT", "RESULT"), rows)
