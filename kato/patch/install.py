"""`kato patch install [NAME...]`: lay patches over the installed components of the nodes that
carry an affected role, one node at a time with restarts and health gates (docs/patch.md).

Every artifact is fetched and verified here before any node is touched; each node verifies it
again, keeps the files a patch replaces and records what it applied.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from kato.config import Cluster, NodeConfig
from kato.connect import select_nodes, this_node
from kato.engine.session import session
from kato.errors import KatoError, PreflightRefused, UsageError
from kato.patch.nodes import STAGING, NodePatches, agent_step
from kato.patch.repository import Fetched, Patch, fetch, load_index
from kato.patch.rollout import NodeWork, RolloutOutcome, plan_of, roll
from kato.patch.status import asked_of_nodes, repository
from kato.plan import Step
from kato.roles import Role, in_start_order


@dataclass(frozen=True)
class Options:
    names: list[str] | None = None
    nodes: list[str] | None = None
    restart: bool = True
    canary: str | None = None
    only_this_node: bool = False
    repo: str | None = None


def chosen_nodes(cluster: Cluster, options: Options) -> tuple[NodeConfig, ...]:
    names = list(options.nodes or [])
    if options.only_this_node:
        names.append(this_node(cluster).name)
    return select_nodes(cluster, names or None)


def applicable(
    patches: tuple[Patch, ...], named: bool, versions: set[str | None]
) -> tuple[Patch, ...]:
    """The patches for the nodes' versions; a named patch for none of them is refused (exit 7)."""
    for patch in patches:
        if named and not versions & set(patch.applies_to):
            raise PreflightRefused(
                f"patch {patch.name} applies to platform {', '.join(patch.applies_to)}, "
                f"and no chosen node runs it (they run {', '.join(sorted(map(str, versions)))})",
                hint="nothing was changed; `kato patch status` lists the patches for this cluster",
            )
    return tuple(p for p in patches if versions & set(p.applies_to))


def plan_node(
    node: NodeConfig,
    state: NodePatches,
    fetched: list[Fetched],
    roles: dict[str, Role],
    restart: bool,
) -> tuple[NodeWork | None, list[str]]:
    """Pure: one node's work (None when there is nothing to do) and lines saying what is skipped."""
    notes: list[str] = []
    change: list[Step] = []
    undo: list[Step] = []
    touched: set[str] = set()
    for item in fetched:
        patch, mine = item.patch, [r for r in item.patch.roles if r in node.roles]
        if patch.name in state.applied:  # done; a later install does a restart still pending
            touched.update(state.applied[patch.name].restart_pending)
            continue
        if not mine:
            continue
        if state.version not in patch.applies_to:
            notes.append(
                f"{node.name}: runs platform {state.version}, {patch.name} is for "
                f"{', '.join(patch.applies_to)}: not patched"
            )
            continue
        files = ", ".join(f"{r}/{f}" for r in mine for f in item.files.get(r, ()))
        staged = f"{STAGING}/patch-{patch.name}.tar.gz"
        args = (patch.name, str(state.version), staged, patch.sha256, ",".join(mine))
        apply = agent_step(
            node.name, f"apply {patch.name}: {files}", "receive-apply", *args, record(patch)
        )
        change.append(replace(apply, upload=str(item.path)))  # the artifact on its stdin
        undo.append(agent_step(node.name, f"revert {patch.name}", "revert", patch.name))
        touched.update(mine)
    if not change and not (touched and restart):
        return None, notes
    restarted = in_start_order(roles[r] for r in touched if r in roles) if restart else ()
    return NodeWork(node.name, (), tuple(change), tuple(undo), tuple(restarted)), notes


def record(patch: Patch) -> str:
    """What the node's record keeps of the patch besides what the agent adds."""
    fields = {"description": patch.description, "severity": patch.severity}
    fields.update({k: v for k, v in (("apply", patch.apply), ("revert", patch.revert)) if v})
    return json.dumps(fields)


def in_rollout_order(works: list[NodeWork], canary: str | None) -> list[NodeWork]:
    if canary is None:
        return works
    first = [w for w in works if w.node == canary]
    if not first:
        raise UsageError(
            f"--canary {canary}: that node has nothing to install",
            hint=f"nodes this install changes: {', '.join(w.node for w in works) or 'none'}",
        )
    return first + [w for w in works if w.node != canary]


def install(
    cluster: Cluster,
    options: Options,
    *,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    command: list[str] | None = None,
) -> RolloutOutcome:
    repo = repository(cluster, options.repo)
    index = load_index(repo)
    chosen = index.chosen(options.names)
    nodes = chosen_nodes(cluster, options)
    if options.canary is not None:
        cluster.node(options.canary)
    with (
        tempfile.TemporaryDirectory(prefix="kato-patch-") as tmp,
        session(cluster, command or [], lock_wait=lock_wait, dry_run=dry_run) as s,
    ):
        roles, states = asked_of_nodes(cluster, s.conns, nodes)
        if states.failed and not states.succeeded:
            raise KatoError(
                "no chosen node could say what it has applied: "
                + "; ".join(f.message for f in states.failed.values()),
                hint="nothing was changed; fix the cause on the node and run again",
            )
        versions = {s.version for s in states.succeeded.values()}
        patches = applicable(chosen, bool(options.names), versions)
        fetched = [fetch(repo, p, Path(tmp)) for p in patches]  # verified before any change
        works, notes = [], []
        for node in nodes:
            if node.name in states.succeeded:
                work, lines = plan_node(
                    node,
                    states.succeeded[node.name],
                    fetched,
                    dict(roles.of(node.name)),
                    options.restart,
                )
                works += [work] if work else []
                notes += lines
        works = in_rollout_order(works, options.canary)
        plan = plan_of("patch install " + (", ".join(p.name for p in patches) or "(none)"), works)
        if dry_run or not works:
            return RolloutOutcome(
                plan, dry_run, failed=dict(states.failed), action="install", notes=tuple(notes)
            )
        done, failed, rest = roll(s, works, options.canary)
        failed = {**states.failed, **failed}
        s.op.settle(bool(done), bool(failed))
    return RolloutOutcome(
        plan, False, done, failed, action="install", not_started=rest, notes=tuple(notes)
    )
