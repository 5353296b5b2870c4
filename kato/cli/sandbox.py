"""`kato sandbox ...`: a cluster of real Debian nodes on this machine, and faults to inject."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from kato import output
from kato.cli.errors import reported
from kato.sandbox.model import DEFAULT_NAME

if TYPE_CHECKING:
    from kato.sandbox.lifecycle import SandboxStatus

app = typer.Typer(
    help="A sandbox cluster of real Debian nodes (systemd-nspawn) on this machine.",
    no_args_is_help=True,
)

NAME = typer.Option(DEFAULT_NAME, "--name", envvar="KATO_SANDBOX", help="Which sandbox.")
JSON = typer.Option(False, "--json", help="Print a JSON document instead of a table.")
NODE = typer.Argument(..., help="A node of the sandbox, e.g. node2.")


def _render(status: SandboxStatus, as_json: bool) -> None:
    if as_json:
        output.document(status)
        return
    rows = [(n.name, n.address, n.state, ",".join(n.roles)) for n in status.nodes]
    output.table(
        ("NODE", "ADDRESS", "STATE", "ROLES"),
        rows,
        title=f"sandbox {status.name} ({status.subnet})",
    )
    output.info(f"cluster file: {status.cluster_file}\nssh: ssh -F {status.ssh_config} NODE")


@app.command()
def up(
    nodes: int = typer.Option(3, "--nodes", "-n", help="How many nodes (1-60)."),
    name: str = NAME,
    subnet: str = typer.Option(
        None, "--subnet", help="A free /24 (default: the first free one in 198.18.0.0/16)."
    ),
    mirror: str = typer.Option(
        None, "--mirror", help="Debian mirror for building the image (default: the one apt uses)."
    ),
    bare: bool = typer.Option(
        False, "--bare", help="Nodes only: do not install and start the reference platform."
    ),
    bastion: bool = typer.Option(
        False,
        "--bastion",
        help="One node more, `bastion`: the only way in from this machine (ProxyJump).",
    ),
    user: str = typer.Option(
        None, "--user", help="kato logs in as this sudo user (with a password) instead of root."
    ),
    from_archive: str = typer.Option(
        None,
        "--from-archive",
        help="Rehearse on a cluster's data: its platform version, and the archive imported.",
    ),
    as_json: bool = JSON,
) -> None:
    """Build the node image (once), boot NODES nodes, install and start the reference
    platform 1.0.0 with kato (--from-archive: the archive's version, then the archive imported);
    a live sandbox is left as it is."""
    with reported(), output.progress() as progress:
        from kato.sandbox import lifecycle

        if bare and from_archive:
            from kato.errors import UsageError

            raise UsageError("--bare and --from-archive exclude each other")
        result = lifecycle.up(
            name,
            nodes,
            subnet,
            mirror,
            progress,
            platform=not bare,
            bastion=bastion,
            user=user,
            from_archive=from_archive,
        )
    if not result.created:
        output.info(f"sandbox {name!r} is already up; nothing changed")
    if result.note:
        output.warn(result.note)
    _render(result.status, as_json)


@app.command()
def status(name: str = NAME, as_json: bool = JSON) -> None:
    """Show each node of the sandbox: address, state, roles."""
    with reported():
        from kato.sandbox import lifecycle

        _render(lifecycle.status(name), as_json)


@app.command()
def down(name: str = NAME) -> None:
    """Remove every node, mount, loop device, bridge and process of the sandbox."""
    with reported(), output.progress() as progress:
        from kato.sandbox import lifecycle

        result = lifecycle.down(name, progress)
    output.info(
        f"sandbox {name!r} removed"
        if result.existed
        else f"there is no sandbox {name!r}; nothing to remove"
    )


@app.command("disk")
def attach_disk(
    node: str = NODE,
    fs: str = typer.Option("btrfs", "--fs", help="btrfs, ext4 or xfs."),
    size: str = typer.Option("512M", "--size", help="e.g. 512M, 2G."),
    at: str = typer.Option("/mnt/ebs", "--at", help="Mount point inside the node."),
    remove: bool = typer.Option(False, "--remove", help="Unmount and delete the disk at --at."),
    name: str = NAME,
) -> None:
    """Attach a loop-backed filesystem to a node at --at (kept across its reboots)."""
    from kato.sandbox import disk

    with reported():
        if remove:
            gone = disk.detach(name, node, at)
            output.info(f"{gone.node}: disk at {gone.at} removed")
            return
        made = disk.attach(name, node, fs, size, at)
    output.info(f"{made.node}: {made.size} {made.fs} mounted at {made.at}")


def _fault_command(verb: str, summary: str) -> None:
    def command(node: str = NODE, name: str = NAME) -> None:
        from kato.sandbox import faults

        with reported():
            getattr(faults, verb)(name, node)
        output.info(f"{node}: {verb} done")

    command.__doc__ = summary
    app.command(verb)(command)


for _verb, _summary in (
    ("crash", "Hard-stop NODE: every process dies at once (connections refused)."),
    ("start", "Boot a stopped or crashed NODE and wait until it answers SSH."),
    ("stop", "Power NODE off cleanly."),
    ("freeze", "Stop every process of NODE (its SSH banner never comes)."),
    ("thaw", "Resume a frozen NODE."),
    ("partition", "Cut NODE off the network (connecting times out)."),
    ("heal", "Reconnect a partitioned NODE."),
    ("reboot", "Reboot NODE for real and wait until it answers again."),
):
    _fault_command(_verb, _summary)
