"""Fault verbs for tests and rehearsals: crash, freeze/thaw, partition/heal, reboot, stop/start."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from kato.errors import KatoError, UsageError
from kato.sandbox import clusterfile, host, model, network
from kato.sandbox import node as nodes
from kato.sandbox.lifecycle import wait_ready
from kato.sandbox.model import Node, Sandbox

REBOOT_TIMEOUT = 120.0


def _require_state(sandbox: Sandbox, node: Node, *allowed: str) -> str:
    now = nodes.state(sandbox, node)
    if now not in allowed:
        raise UsageError(
            f"{node.name} is {now}; this needs it {' or '.join(allowed)}",
            hint=f"see `kato sandbox status --name {sandbox.name}`",
        )
    return now


def crash(sandbox_name: str, name: str) -> None:
    """Hard stop: every process of the node dies at once, as in a power cut."""
    sandbox = model.require(sandbox_name)
    node = sandbox.node(name)
    _require_state(sandbox, node, "running", "frozen", "partitioned", "booting")
    before = nodes.runtime(sandbox, node)
    nodes.kill(sandbox, node)
    host.wait_gone([p for p in (before.nspawn, before.supervisor) if p is not None], 30.0)


def start(sandbox_name: str, name: str) -> None:
    """Boot a stopped or crashed node and wait until it answers SSH."""
    sandbox = model.require(sandbox_name)
    node = sandbox.node(name)
    if nodes.state(sandbox, node) == "running":
        return
    _require_state(sandbox, node, "stopped", "crashed", "booting")
    network.create_node_network(sandbox, node)
    nodes.prepare_root(sandbox, node, Path(sandbox.image), clusterfile.admin_public_key(sandbox))
    nodes.start(sandbox, node)
    wait_ready(sandbox, node)


def stop(sandbox_name: str, name: str) -> None:
    sandbox = model.require(sandbox_name)
    nodes.stop(sandbox, sandbox.node(name))


def _signal_all(sandbox: Sandbox, node: Node, sig: signal.Signals) -> None:
    init = nodes.runtime(sandbox, node).init
    if init is None:
        raise UsageError(f"{node.name} is not running")
    for _ in range(3):  # a process forked between two passes is caught by the next one
        for pid in host.pid_namespace_members(init):
            host.signal_pid(pid, sig)
        time.sleep(0.05)


def freeze(sandbox_name: str, name: str) -> None:
    """Stop every process of the node: connections are accepted by the kernel, nothing answers."""
    sandbox = model.require(sandbox_name)
    node = sandbox.node(name)
    _require_state(sandbox, node, "running", "partitioned", "frozen")
    _signal_all(sandbox, node, signal.SIGSTOP)


def thaw(sandbox_name: str, name: str) -> None:
    sandbox = model.require(sandbox_name)
    node = sandbox.node(name)
    _signal_all(sandbox, node, signal.SIGCONT)


def partition(sandbox_name: str, name: str) -> None:
    """Cut the node off the network: packets to it vanish, connecting times out."""
    sandbox = model.require(sandbox_name)
    node = sandbox.node(name)
    network.set_link(sandbox.veth(node), up=False)


def heal(sandbox_name: str, name: str) -> None:
    sandbox = model.require(sandbox_name)
    node = sandbox.node(name)
    network.set_link(sandbox.veth(node), up=True)


def reboot(sandbox_name: str, name: str) -> None:
    """Reboot the node for real (its systemd shuts down and boots again) and wait for it."""
    sandbox = model.require(sandbox_name)
    node = sandbox.node(name)
    _require_state(sandbox, node, "running")
    before = nodes.runtime(sandbox, node)
    assert before.init is not None
    host.signal_pid(before.init, signal.SIGINT)  # systemd: ctrl-alt-del, i.e. reboot.target
    deadline = time.monotonic() + REBOOT_TIMEOUT
    while time.monotonic() < deadline:
        now = nodes.runtime(sandbox, node)
        if now.init is not None and now.init != before.init:
            break
        if now.supervisor is None:
            raise KatoError(
                f"{node.name} did not come back from its reboot",
                hint=f"see {sandbox.node_dir(node) / 'console.log'}",
            )
        time.sleep(0.1)
    else:
        raise KatoError(f"{node.name} did not reboot within {REBOOT_TIMEOUT:g}s")
    wait_ready(sandbox, node, timeout=max(1.0, deadline - time.monotonic()))
