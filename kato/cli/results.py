"""The one renderer of outcomes: a plan (dry run), "nothing to do", or a per-node table of
what was done, what failed (in which phase, and whether it was undone) and what was not
reached; then the exit code of the one rule (kato.errors.outcome_exit)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NoReturn

import typer

from kato import output
from kato.errors import outcome_exit
from kato.transport.fanout import NodeFailure

if TYPE_CHECKING:
    from kato.plan import PlanOutcome


def failure_rows(failed: Mapping[str, NodeFailure]) -> list[tuple[str, str, str]]:
    return [(f.node, f.phase, f.message) for f in failed.values()]


def exit_for(succeeded: Mapping[str, object], failed: Mapping[str, NodeFailure]) -> int:
    return int(outcome_exit(len(succeeded), [f.exit_code for f in failed.values()]))


def show_plan(outcome: PlanOutcome, verbose: bool = False) -> None:
    """The plan as a person reads it, one line per node per item; `verbose`: every command."""
    plan = outcome.plan
    output.line(f"plan: {plan.title} ({len(plan.steps)} steps; nothing was changed)")
    if not verbose:
        for line in plan.readable():
            output.line(line)
        output.info("--verbose shows the exact commands, --json the whole plan")
        return
    for node in plan.nodes:
        output.line(f"{node}:")
        for step in plan.for_node(node):
            output.line(f"  {step.shown()}")


def render(
    outcome: PlanOutcome,
    as_json: bool,
    *,
    done: Callable[[int], str],
    nothing: str = "nothing to do",
    verbose: bool = False,
) -> NoReturn:
    """Show the outcome (stdout: the plan or the table; stderr: notes) and exit with its code.
    `done(count)` says what a node that succeeded did."""
    if as_json:
        output.document(outcome)
        raise typer.Exit(outcome.exit_code)
    for note in outcome.notes:
        output.line(note)
    plan = outcome.plan
    if outcome.dry_run:
        show_plan(outcome, verbose)
    elif plan.is_empty and not outcome.failed:
        output.info(f"{plan.title}: {nothing}")
    else:
        rows = [(n, "ok", done(k)) for n, k in outcome.succeeded.items()]
        rows += [(f.node, f"failed in {f.phase}", f.message) for f in outcome.failed.values()]
        rows += [
            (n, "not started", "the rollout stopped at the failure") for n in outcome.not_started
        ]
        output.table(("NODE", "RESULT", "DETAIL"), rows, title=plan.title)
    raise typer.Exit(outcome.exit_code)
