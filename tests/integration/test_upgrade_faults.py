"""Upgrade faults on real nodes: a second operation holding the lock (exit 4, nothing changed),
and kato killed with SIGKILL half-way through an upgrade, then resumed (and rolled back).

Every test leaves the cluster on 1.0.0, healthy, with no unfinished upgrade.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import KATO, Cluster
from tests.integration.test_platform import node_state, on
from tests.integration.test_upgrade import register, registry, versions
from tests.integration.upgrade_steps import wait_for

pytestmark = pytest.mark.integration
STATE = "/var/lib/kato/upgrade/state.json"


def lock_holder(cluster: Cluster) -> dict[str, object] | None:
    done = on(cluster, "lock", "status", "--json")
    record: dict[str, object] | None = json.loads(done.stdout)["record"]
    return record


def phase(cluster: Cluster) -> str | None:
    done = cluster.ssh("node1", f"cat {STATE}")
    return str(json.loads(done.stdout)["phase"]) if done.returncode == 0 else None


def test_an_upgrade_while_another_operation_holds_the_lock_exits_4(cluster: Cluster) -> None:
    path = cluster.home / "cluster.yaml"
    holder = subprocess.Popen(
        (*KATO, "--cluster", str(path), "run", "--node", "node1", "--", "sleep", "20"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: lock_holder(cluster) is not None, "the lock")
        before = node_state(cluster)
        done = on(cluster, "upgrade", "in-place", "1.2.0", "--no-backup", check=False)
        assert done.returncode == 4, done.stderr
        assert "sleep 20" in done.stderr
        assert node_state(cluster) == before
    finally:
        holder.wait(timeout=60)


def test_kill_9_mid_upgrade_then_resume_finishes_it(cluster: Cluster, tmp_path: Path) -> None:
    register(cluster, "wiki")
    before = registry(cluster)
    path = cluster.home / "cluster.yaml"
    argv = (*KATO, "--cluster", str(path), "upgrade", "in-place", "1.2.0")
    upgrade = subprocess.Popen(
        (*argv, "--backup-dir", str(tmp_path)),
        env={**os.environ, "KATO_LOCK_TTL": "5"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: phase(cluster) == "starting", "the upgrade to start the roles")
    finally:
        upgrade.send_signal(signal.SIGKILL)
        upgrade.wait()
    status = on(cluster, "upgrade", "status").stdout
    assert "interrupted in starting: `kato upgrade resume` continues it" in status
    other = on(cluster, "upgrade", "in-place", "2.0.0", check=False)
    assert other.returncode == 7
    assert "1.0.0 -> 1.2.0 is unfinished" in other.stderr
    resumed = on(cluster, "upgrade", "resume", "--lock-wait", "60s", "--backup-dir", str(tmp_path))
    assert "upgraded 1.0.0 -> 1.2.0" in resumed.stdout
    assert set(versions(cluster).values()) == {"1.2.0"}
    assert registry(cluster)["format"] == 2
    assert len(list(tmp_path.glob("*.tar.zst"))) == 1  # the export of the first run is kept
    on(cluster, "upgrade", "rollback", "--yes")
    assert set(versions(cluster).values()) == {"1.0.0"}
    assert registry(cluster) == before


def taken_over(cluster: Cluster) -> list[str]:
    done = cluster.ssh("node1", f"cat {STATE}")
    return list(json.loads(done.stdout).get("taken_over", [])) if done.returncode == 0 else []


def test_kill_9_between_two_routers_then_resume_finishes_the_takeover(
    cluster: Cluster, tmp_path: Path
) -> None:
    before = registry(cluster)
    path = cluster.home / "cluster.yaml"
    on(cluster, "upgrade", "prep", "1.2.0", "--backup-dir", str(tmp_path))
    takeover = subprocess.Popen(
        (*KATO, "--cluster", str(path), "upgrade", "takeover", "1.2.0"),
        env={**os.environ, "KATO_LOCK_TTL": "5"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: taken_over(cluster) == ["node2"], "node2 to be taken over")
    finally:
        takeover.send_signal(signal.SIGKILL)
        takeover.wait()
    status = on(cluster, "upgrade", "status").stdout
    assert "interrupted in taking over" in status
    resumed = on(cluster, "upgrade", "resume", "--lock-wait", "60s")
    assert "took over 1.0.0 -> 1.2.0" in resumed.stdout
    assert set(versions(cluster).values()) == {"1.2.0"}
    shown = cluster.ssh("node1", "/usr/local/sbin/kato-lb show").stdout
    assert "node2 UP" in shown and "node3 UP" in shown
    on(cluster, "upgrade", "rollback", "--yes")
    assert set(versions(cluster).values()) == {"1.0.0"}
    assert registry(cluster) == before


def test_a_router_crashed_mid_takeover_is_named_and_resume_finishes_once_it_is_back(
    cluster: Cluster, tmp_path: Path
) -> None:
    from tests.integration.conftest import kato

    before = registry(cluster)
    path = cluster.home / "cluster.yaml"
    on(cluster, "upgrade", "prep", "1.2.0", "--backup-dir", str(tmp_path))
    takeover = subprocess.Popen(
        (*KATO, "--cluster", str(path), "upgrade", "takeover", "1.2.0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: taken_over(cluster) == ["node2"], "node2 to be taken over")
        kato("sandbox", "crash", "node3", "--name", cluster.name)
        _, stderr = takeover.communicate(timeout=600)
    finally:
        if takeover.poll() is None:
            takeover.kill()
        kato("sandbox", "start", "node3", "--name", cluster.name)
    assert takeover.returncode == 1, stderr
    assert "node3" in stderr and "could not be put back" in stderr
    status = on(cluster, "upgrade", "status").stdout
    assert "interrupted in failed" in status
    on(cluster, "upgrade", "resume", "--lock-wait", "60s")
    assert set(versions(cluster).values()) == {"1.2.0"}
    on(cluster, "upgrade", "rollback", "--yes")
    assert set(versions(cluster).values()) == {"1.0.0"}
    assert registry(cluster) == before


def test_a_second_kato_is_refused_in_every_phase_of_an_upgrade_and_its_rollback(
    cluster: Cluster, tmp_path: Path
) -> None:
    from tests.integration.upgrade_steps import (
        IN_PLACE,
        ROLLBACK,
        Paused,
        fingerprint,
        refused_while_held,
    )

    before = registry(cluster)
    argv = ("upgrade", "in-place", "1.2.0", "--backup-dir", str(tmp_path))
    with Paused(cluster, tmp_path / "up", *argv) as upgrade:
        upgrade.walk((*IN_PLACE, "done"), lambda: refused_while_held(cluster, " ".join(argv)))
        code, out, err = upgrade.finish()
    assert code == 0 and "upgraded 1.0.0 -> 1.2.0" in out, err
    assert set(versions(cluster).values()) == {"1.2.0"}
    upgraded = fingerprint(cluster)
    planned = on(cluster, "upgrade", "rollback", "--dry-run").stdout
    assert "restore" in planned and "nothing was changed" in planned
    assert fingerprint(cluster) == upgraded
    with Paused(cluster, tmp_path / "back", "upgrade", "rollback", "--yes") as back:
        back.walk(
            (*ROLLBACK, "rolled back"),
            lambda: refused_while_held(cluster, "upgrade rollback --yes"),
        )
        code, out, err = back.finish()
    assert code == 0, err
    assert set(versions(cluster).values()) == {"1.0.0"}
    assert registry(cluster) == before


def test_every_upgrade_dry_run_changes_nothing_on_any_node(cluster: Cluster) -> None:
    from tests.integration.upgrade_steps import fingerprint

    before, journal = fingerprint(cluster), cluster.ssh("node1", "cat /var/log/kato/journal.jsonl")
    for args in (
        ("upgrade", "stage", "1.2.0", "--dry-run"),
        ("upgrade", "in-place", "1.2.0", "--dry-run"),
        ("upgrade", "in-place", "2.0.0", "--dry-run"),
        ("upgrade", "prep", "1.2.0", "--stateless", "--dry-run"),
        ("upgrade", "task", "1.0.0", "--role", "controller", "--dry-run", "--", "true"),
        ("release", "prune", "--keep", "0", "--dry-run"),
    ):
        done = on(cluster, *args)
        assert "nothing was changed" in done.stdout or "would" in done.stdout, (args, done.stdout)
    # with nothing prepared or interrupted, these refuse, changing nothing either
    for refused_args, code in (
        (("upgrade", "takeover", "1.2.0"), 2),
        (("upgrade", "resume"), 2),
        (("upgrade", "rollback"), 2),
    ):
        refused = on(cluster, *refused_args, "--dry-run", check=False)
        assert refused.returncode == code, (refused_args, refused.stderr)
    assert fingerprint(cluster) == before
    assert cluster.ssh("node1", "cat /var/log/kato/journal.jsonl").stdout == journal.stdout


def serves(cluster: Cluster, load: type) -> bool:
    sample = load(cluster.address("node1"), 20, 20)
    sample.run()
    return not sample.failures


def test_a_router_partitioned_mid_takeover_is_named_the_apps_keep_serving_and_resume_finishes(
    cluster: Cluster, tmp_path: Path
) -> None:
    from tests.integration.conftest import kato
    from tests.integration.test_upgrade_graceful import Load
    from tests.integration.upgrade_steps import Paused

    before = registry(cluster)
    on(cluster, "upgrade", "prep", "1.2.0", "--backup-dir", str(tmp_path))
    with Paused(cluster, tmp_path / "takeover", "upgrade", "takeover", "1.2.0") as taking:
        taking.at("taking over")  # before the first router (node2); node3 comes second
        kato("sandbox", "partition", "node3", "--name", cluster.name)
        try:
            taking.release()
            code, _, stderr = taking.finish()
            assert code == 1, stderr
            assert "node3" in stderr and "could not be put back" in stderr
            # the apps keep serving through node2 (once its router stops sending requests to
            # the app instances on the lost node, which time out until then)
            wait_for(lambda: serves(cluster, Load), "20 requests in a row through node2", 90)
            status = on(cluster, "upgrade", "status", check=False)
            assert status.returncode == 3, status.stdout
            shown = status.stdout
            assert "interrupted in failed" in shown, shown
            assert any(
                line.split()[:1] == ["node3"] and "did not answer" in line
                for line in shown.splitlines()
            )
            assert any(line.split()[:2] == ["node2", "1.0.0"] for line in shown.splitlines())
        finally:
            kato("sandbox", "heal", "node3", "--name", cluster.name)
    wait_for(lambda: cluster.ssh("node3", "true").returncode == 0, "node3 to answer again")
    on(cluster, "upgrade", "resume", "--lock-wait", "60s")
    assert set(versions(cluster).values()) == {"1.2.0"}
    on(cluster, "upgrade", "rollback", "--yes")
    assert set(versions(cluster).values()) == {"1.0.0"}
    assert registry(cluster) == before


def test_the_core_node_rebooted_mid_upgrade_then_resume_finishes_it_from_the_record(
    cluster: Cluster, tmp_path: Path
) -> None:
    """kato runs on the core node: a reboot there kills kato and empties /run (the lock)."""
    from tests.integration.conftest import kato
    from tests.integration.upgrade_steps import Paused

    before = registry(cluster)
    boot = cluster.boot_id("node1")
    argv = ("upgrade", "in-place", "1.2.0", "--backup-dir", str(tmp_path))
    with Paused(cluster, tmp_path / "up", *argv) as upgrade:
        upgrade.at("migrating")
        assert lock_holder(cluster) is not None
        upgrade.kill()
    kato("sandbox", "reboot", "node1", "--name", cluster.name)
    assert cluster.boot_id("node1") != boot
    assert lock_holder(cluster) is None  # /run is a tmpfs: the lock went with the reboot
    status = on(cluster, "upgrade", "status").stdout
    assert "interrupted in migrating: `kato upgrade resume` continues it" in status
    resumed = on(cluster, "upgrade", "resume", "--backup-dir", str(tmp_path))
    assert "upgraded 1.0.0 -> 1.2.0" in resumed.stdout
    assert set(versions(cluster).values()) == {"1.2.0"}
    assert registry(cluster)["format"] == 2
    on(cluster, "upgrade", "rollback", "--yes")
    assert set(versions(cluster).values()) == {"1.0.0"}
    assert registry(cluster) == before
