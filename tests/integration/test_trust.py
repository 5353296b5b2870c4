"""Host keys in bulk on real nodes: `kato node trust --all` records only keys that each match
a fingerprint given (or a typed yes), `--from-known-hosts` takes hashed lines too."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster, cluster_copy
from tests.integration.test_core import fingerprint_of, host_key_line, run_on

pytestmark = pytest.mark.integration
NODES = ("node1", "node2", "node3")


def test_trust_all_records_every_key_only_when_each_matches(
    cluster: Cluster, tmp_path: Path
) -> None:
    path = cluster_copy(cluster, tmp_path, known_hosts="")
    known = tmp_path / "known_hosts"
    unconfirmed = run_on(path, "node", "trust", "--all")  # no terminal: nobody can confirm
    assert unconfirmed.returncode == 5, unconfirmed.stderr
    assert all(fingerprint_of(cluster, n) in unconfirmed.stderr for n in NODES)
    assert known.read_text() == ""
    listed = tmp_path / "fingerprints.txt"
    listed.write_text("".join(f"256 {fingerprint_of(cluster, n)} root@{n} (ED25519)\n"
                              for n in ("node1", "node2")))  # fmt: skip
    one_short = run_on(path, "node", "trust", "--all", "--fingerprints", str(listed))
    assert one_short.returncode == 5 and "node3" in one_short.stderr
    assert "nothing was recorded" in one_short.stderr and known.read_text() == ""
    node3 = fingerprint_of(cluster, "node3")
    dry = run_on(path, "node", "trust", "--all", "--fingerprints", str(listed),
                 "--fingerprint", node3, "--dry-run", "--json")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert [k["node"] for k in json.loads(dry.stdout)["keys"]] == list(NODES)
    assert known.read_text() == ""
    done = run_on(path, "node", "trust", "--all", "--fingerprints", str(listed),
                  "--fingerprint", node3)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(known.read_text().splitlines()) == sorted(
        host_key_line(cluster, n).strip() for n in NODES
    )
    assert run_on(path, "run", "--", "true").returncode == 0


def test_from_known_hosts_takes_hashed_lines_and_names_missing_nodes(
    cluster: Cluster, tmp_path: Path
) -> None:
    path = cluster_copy(cluster, tmp_path, known_hosts="")
    other = tmp_path / "other"
    subprocess.run(("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)), check=True)
    theirs = tmp_path / "theirs"
    theirs.write_text(
        "# an admin's own file\n"
        + host_key_line(cluster, "node1")
        + host_key_line(cluster, "node2")
        + "203.0.113.9 " + " ".join(Path(f"{other}.pub").read_text().split()[:2]) + "\n"
        + "@revoked * " + " ".join(Path(f"{other}.pub").read_text().split()[:2]) + "\n"
    )  # fmt: skip
    subprocess.run(("ssh-keygen", "-H", "-f", str(theirs)), check=True, capture_output=True)
    assert cluster.address("node1") not in theirs.read_text()  # hashed, as OpenSSH does
    done = run_on(path, "node", "trust", "--all", "--from-known-hosts", str(theirs))
    assert done.returncode == 3, done.stderr  # node3 is not in that file
    assert f"node3: host key: {theirs} has no key for {cluster.address('node3')}" in done.stderr
    known = (tmp_path / "known_hosts").read_text()
    assert sorted(known.splitlines()) == sorted(
        host_key_line(cluster, n).strip() for n in ("node1", "node2")
    )
    assert run_on(path, "run", "--node", "node2", "--", "true").returncode == 0
