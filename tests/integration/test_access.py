"""Real clusters' ways in on real nodes: nodes reached only through a bastion (ProxyJump in an
OpenSSH config, the bastion's key checked too), kato logging in as a sudo user whose
password reaches sudo on stdin only (never in `ps`, the journal or the output), and a
newcomer's path of docs/install.md with the built wheel, outside the checkout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import kato, missing_requirement, sandbox_name

CHECKOUT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@dataclass
class Box:
    name: str
    home: Path

    def kato(
        self, *args: str, check: bool = True, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        return kato("--cluster", str(self.home / "cluster.yaml"), *args, check=check, **kw)  # type: ignore[arg-type]

    def ssh(self, node: str, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ("ssh", "-F", str(self.home / "ssh_config"), "-o", "BatchMode=yes", node, command),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip


def _sandbox(word: str, *options: str) -> Iterator[Box]:
    reason = missing_requirement()
    if reason:
        pytest.skip(f"sandbox {reason}")
    name = sandbox_name(word)
    kato("sandbox", "down", "--name", name)
    up = kato("sandbox", "up", "--name", name, "--nodes", "2", *options, "--json")
    try:
        yield Box(name, Path(json.loads(up.stdout)["cluster_file"]).parent)
    finally:
        kato("sandbox", "down", "--name", name)


@pytest.fixture(scope="module")
def bastion() -> Iterator[Box]:
    """A real cluster's shape: the nodes only behind a jump host, kato's login a sudo user."""
    yield from _sandbox("bast", "--bastion", "--user", "admin")


@pytest.fixture(scope="module")
def admin() -> Iterator[Box]:
    yield from _sandbox("adm", "--user", "admin")


def test_nodes_behind_a_bastion_are_reached_only_through_it(bastion: Box) -> None:
    document = yaml.safe_load((bastion.home / "cluster.yaml").read_text())
    assert [n["name"] for n in document["nodes"]] == ["node1", "node2"]
    key = str(bastion.home / "id_ed25519")
    for node in document["nodes"]:  # straight from this machine: refused by the node
        direct = subprocess.run(
            ("ssh", "-i", key, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
             "-o", f"UserKnownHostsFile={bastion.home / 'known_hosts'}",
             f"root@{node['address']}", "true"),
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert direct.returncode == 255 and "Permission denied" in direct.stderr
    done = bastion.kato("run", "--json", "--", "cat", "/etc/hostname")
    results = json.loads(done.stdout)
    assert sorted(r["stdout"].strip() for r in results["results"].values()) == ["node1", "node2"]
    logins = bastion.ssh("bastion", "journalctl --no-pager -u ssh | grep -c 'Accepted publickey'")
    assert int(logins.stdout) >= 2  # kato logged in to the bastion on its way


def test_the_bastions_own_host_key_must_be_known(bastion: Box, tmp_path: Path) -> None:
    document = yaml.safe_load((bastion.home / "cluster.yaml").read_text())
    bastion_address = bastion.ssh("bastion", "hostname -I").stdout.split()[0]
    lines = (bastion.home / "known_hosts").read_text().splitlines()
    known = tmp_path / "known_hosts"
    known.write_text(
        "".join(f"{line}\n" for line in lines if not line.startswith(bastion_address + " "))
    )
    known.chmod(0o600)
    document["ssh"]["known_hosts"] = str(known)
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump(document))
    done = kato("--cluster", str(config), "run", "--node", "node2", "--", "true", check=False)
    assert done.returncode == 5, done.stderr
    assert "(jump host bastion): host key refused" in done.stdout + done.stderr
    assert f"{bastion_address} is not in {known}" in done.stdout + done.stderr


class PsSampler:
    """Every process's command line on this machine and on each node, sampled all along."""

    def __init__(self, box: Box, nodes: list[str]) -> None:
        loop = "while true; do ps -eo args; echo ---; sleep 0.05; done"
        self.procs = [
            subprocess.Popen(
                ("ssh", "-F", str(box.home / "ssh_config"), "-o", "BatchMode=yes", n, loop),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )  # fmt: skip
            for n in nodes
        ]
        self.procs.append(subprocess.Popen(("sh", "-c", loop), stdout=subprocess.PIPE, text=True))
        self.text: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(p,)) for p in self.procs]
        for reader in self.readers:
            reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.text.append(proc.stdout.read())

    def stop(self) -> str:
        for proc in self.procs:
            proc.terminate()
        for reader in self.readers:
            reader.join(30)
        return "".join(self.text)


def test_core_paths_run_as_a_sudo_user_and_the_password_shows_nowhere(
    admin: Box, tmp_path: Path
) -> None:
    password = (admin.home / "sudo_password").read_text().strip()
    assert yaml.safe_load((admin.home / "cluster.yaml").read_text())["ssh"]["user"] == "admin"
    outputs: list[str] = []
    sampler = PsSampler(admin, ["node1", "node2"])
    try:
        for args in (
            ("status",),
            ("install", "--version", "1.0.0"),
            ("patch", "install", "router-nosniff"),
            ("patch", "revert", "router-nosniff"),
            ("data", "export", str(tmp_path)),
        ):
            done = admin.kato(*args)
            outputs += [done.stdout, done.stderr]
        (archive,) = tmp_path.glob("*.tar.zst")
        done = admin.kato("data", "import", str(archive))
        outputs += [done.stdout, done.stderr]
    finally:
        samples = sampler.stop()
    assert "sudo -k -S -p" in samples  # the sampler did see kato's commands on the nodes
    assert password not in samples
    assert all(password not in text for text in outputs)
    for node in ("node1", "node2"):
        logs = admin.ssh(node, "journalctl --no-pager; cat /var/log/kato/* 2>/dev/null").stdout
        assert "Accepted publickey for admin" in logs
        assert "admin : PWD=/home/admin ; USER=root" in logs  # through sudo
        assert password not in logs
    status = json.loads(admin.kato("status", "--json").stdout)
    assert {r["health"] for n in status["nodes"] for r in n["roles"]} == {"ok"}


def test_a_wrong_sudo_password_is_named_and_changes_nothing(admin: Box, tmp_path: Path) -> None:
    wrong = tmp_path / "sudo_password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    document = yaml.safe_load((admin.home / "cluster.yaml").read_text())
    document["ssh"]["sudo_password_file"] = str(wrong)
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump(document))
    done = kato("--cluster", str(config), "stop", "--role", "router", check=False)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "sudo as admin did not accept the password" in done.stderr, done.stderr
    assert admin.ssh("node2", "systemctl is-active kato-router").stdout.strip() == "active"


def test_node_check_runs_the_role_checks_through_sudo(admin: Box) -> None:
    done = admin.kato("node", "check", "--json")
    checks = json.loads(done.stdout)
    assert checks and all(c["passed"] for c in checks), checks
    assert {c["node"] for c in checks} == {"node1", "node2"}
    log = admin.ssh("node1", "journalctl --no-pager -t sudo | tail -n 50").stdout
    assert re.search(r"admin : PWD=/home/admin ; USER=root ; COMMAND=\S*/sh -c", log), log


def _authorize(box: Box, key: Path) -> None:
    public = Path(f"{key}.pub").read_text().strip()
    for node in ("node1", "node2"):
        done = box.ssh(node, f"echo '{public}' >> /home/admin/.ssh/authorized_keys")
        assert done.returncode == 0, done.stderr


def test_a_key_with_a_passphrase_from_a_file_or_a_variable(admin: Box, tmp_path: Path) -> None:
    key = tmp_path / "id_locked"
    subprocess.run(
        ("ssh-keygen", "-q", "-t", "ed25519", "-N", "open sesame", "-f", str(key)), check=True
    )
    _authorize(admin, key)
    document = yaml.safe_load((admin.home / "cluster.yaml").read_text())
    document["ssh"]["identity_file"] = str(key)
    config = tmp_path / "cluster.yaml"

    def status(extra: dict[str, object], env: dict[str, str] | None = None) -> Any:
        config.write_text(yaml.safe_dump({**document, "ssh": {**document["ssh"], **extra}}))
        return kato("--cluster", str(config), "status", check=False, env=env)

    missing = status({})
    assert missing.returncode == 5  # every node refused: the table on stdout says why
    assert "protected by a passphrase kato was not given" in missing.stdout
    secret = tmp_path / "passphrase"
    secret.write_text("open sesame\n")
    secret.chmod(0o644)
    loose = status({"passphrase_file": str(secret)})
    assert loose.returncode == 2 and f"chmod 600 {secret}" in loose.stderr
    secret.chmod(0o600)
    assert status({"passphrase_file": str(secret)}).returncode == 0
    by_env = status(
        {"passphrase_env": "KATO_TEST_PASSPHRASE"}, {"KATO_TEST_PASSPHRASE": "open sesame"}
    )
    assert by_env.returncode == 0, by_env.stderr


def test_the_agent_is_used_only_when_asked(admin: Box, tmp_path: Path) -> None:
    key = tmp_path / "id_agent"
    subprocess.run(("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)), check=True)
    _authorize(admin, key)
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(("ssh-agent", "-D", "-a", str(sock)), stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.1)
        env = {"SSH_AUTH_SOCK": str(sock), "HOME": str(tmp_path)}  # no ~/.ssh/id_* to fall to
        subprocess.run(("ssh-add", "-q", str(key)), check=True, env={**os.environ, **env})
        key.unlink()  # only the agent holds it now
        document = yaml.safe_load((admin.home / "cluster.yaml").read_text())
        del document["ssh"]["identity_file"]
        config = tmp_path / "cluster.yaml"
        config.write_text(yaml.safe_dump(document))
        without = kato("--cluster", str(config), "status", check=False, env=env)
        assert without.returncode == 5
        assert "auth   no key to log in to admin@" in without.stdout
        document["ssh"]["agent"] = True
        config.write_text(yaml.safe_dump(document))
        using = kato("--cluster", str(config), "status", check=False, env=env)
        assert using.returncode == 0, using.stderr
    finally:
        agent.terminate()
        agent.wait(10)


def _newcomer(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def test_a_newcomer_follows_install_md_with_the_wheel_through_the_bastion(
    bastion: Box, tmp_path: Path
) -> None:
    """docs/install.md as written: build the wheel, install it in a fresh venv outside the
    checkout, write a cluster file whose logins come from an OpenSSH config alone (User admin,
    ProxyJump), take the host keys (the jump host's too) from an OpenSSH known_hosts, then
    `kato status`, `kato check`, `kato data export`."""
    assert not tmp_path.is_relative_to(CHECKOUT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KATO_", "PYTHON"))}
    _newcomer([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
               str(tmp_path / "dist"), str(CHECKOUT)], tmp_path, env)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("kato-*.whl")
    _newcomer([sys.executable, "-m", "venv", str(tmp_path / "opt")], tmp_path, env)
    _newcomer([str(tmp_path / "opt/bin/pip"), "install", "--quiet", str(wheel)], tmp_path, env)
    sandbox = yaml.safe_load((bastion.home / "cluster.yaml").read_text())
    where = {n["name"]: n["address"] for n in sandbox["nodes"]}
    where["bastion"] = bastion.ssh("bastion", "hostname -I").stdout.split()[0]
    key = bastion.home / "id_ed25519"
    ssh_config = tmp_path / "ssh_config"  # as in ~/.ssh/config: kato's cluster file names no user
    ssh_config.write_text(f"Host bastion\n  HostName {where['bastion']}\n  User root\n"
                          f"  IdentityFile {key}\n" + "".join(
        f"Host {n}\n  HostName {where[n]}\n  User admin\n  IdentityFile {key}\n"
        "  ProxyJump bastion\n" for n in ("node1", "node2")))  # fmt: skip
    (tmp_path / "sudo_password").write_text((bastion.home / "sudo_password").read_text())
    (tmp_path / "sudo_password").chmod(0o600)
    cluster_file = tmp_path / "cluster.yaml"
    cluster_file.write_text(yaml.safe_dump({
        "name": sandbox["name"], "core": "node1",
        "ssh": {"config": str(ssh_config), "known_hosts": str(tmp_path / "known_hosts"),
                "sudo_password_file": str(tmp_path / "sudo_password")},
        "nodes": [{"name": n["name"], "address": n["name"], "roles": n["roles"]}
                  for n in sandbox["nodes"]],
    }))  # fmt: skip
    kato_ = str(tmp_path / "opt/bin/kato")
    env["KATO_CLUSTER"] = str(cluster_file)

    def step(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        done = subprocess.run((kato_, *args), cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600, stdin=subprocess.DEVNULL)  # fmt: skip
        assert done.returncode in ok, f"kato {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done

    step("config", "validate")
    refused = step("node", "trust", "--node", "node1", "--fingerprint", "SHA256:" + "A" * 43,
                   ok=(5,))  # fmt: skip
    assert "(jump host bastion)" in refused.stderr and "--from-known-hosts" in refused.stderr
    trusted = json.loads(step("node", "trust", "--from-known-hosts",
                              str(bastion.home / "known_hosts"), "--json").stdout)  # fmt: skip
    assert {k["node"] for k in trusted["keys"]} == {"bastion (jump host)", "node1", "node2"}
    status = json.loads(step("status", "--json").stdout)
    assert {r["health"] for n in status["nodes"] for r in n["roles"]} == {"ok"}, status
    plugin = step("check", ok=(0, 1, 2))  # a loaded test machine may warn on load
    assert plugin.stdout.startswith("KATO ") and "'nodes_up'=2" in plugin.stdout, plugin.stdout
    assert "lock could not be read" not in plugin.stdout  # the lock is read through sudo
    step("data", "export", str(tmp_path))
    (archive,) = tmp_path.glob("*.tar.zst")
    step("data", "verify", str(archive))
    log = bastion.ssh("node1", "journalctl --no-pager -t sudo | tail -n 100").stdout
    assert "admin : PWD=/home/admin ; USER=root" in log  # User admin from the config, sudo
