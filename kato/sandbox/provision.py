"""The last step of `kato sandbox up`: the reference platform installed and started by kato."""

from __future__ import annotations

from pathlib import Path

from kato import config
from kato.errors import KatoError
from kato.platform import control, install
from kato.progress import Progress
from kato.sandbox import clusterfile, katonode, loadbalancer
from kato.sandbox.model import Sandbox
from kato.transport import local

BUILD_RELEASE = Path(__file__).resolve().parents[2] / "scripts" / "build-release"
BUILD_PATCHES = BUILD_RELEASE.with_name("build-patches")
PLATFORM_VERSION = "1.0.0"


def releases_dir(sandbox: Sandbox) -> Path:
    return sandbox.home / "releases"


def build_releases(sandbox: Sandbox) -> Path:
    """The reference platform's release repository (1.0.0 and 1.1.0) for this sandbox."""
    if not BUILD_RELEASE.exists():
        raise KatoError(
            f"{BUILD_RELEASE} is missing: the reference platform comes with kato's source tree",
            hint="run kato from its checkout, or use --bare",
        )
    target = releases_dir(sandbox)
    local.run((str(BUILD_RELEASE), str(target)), timeout=300)
    return target


def build_patches(sandbox: Sandbox) -> Path:
    """The reference platform's sample patch repository (patches/) for this sandbox."""
    target = sandbox.home / "patches"
    local.run((str(BUILD_PATCHES), str(target)), timeout=300)
    return target


def provision(sandbox: Sandbox, progress: Progress, version: str = PLATFORM_VERSION) -> None:
    progress.step("building the reference platform's release repository")
    build_releases(sandbox)
    progress.step("building the sample patch repository")
    build_patches(sandbox)
    cluster = config.load(str(clusterfile.cluster_path(sandbox)), env={})
    command = ["kato", "sandbox", "up", "--name", sandbox.name]
    progress.step(f"kato install --version {version}")
    done = install.install(cluster, version, None, command=command)
    if done.failed:
        raise KatoError(
            "installing the platform failed on "
            + ", ".join(f"{f.node} ({f.message})" for f in done.failed.values())
        )
    progress.step("kato start")
    started = control.control(cluster, "start", [], None, command=command)
    if started.failed:
        raise KatoError(
            "starting the platform failed on "
            + ", ".join(f"{f.node} ({f.message})" for f in started.failed.values())
        )
    loadbalancer.install(cluster, progress)
    clusterfile.add_load_balancer(sandbox, loadbalancer.hook_document(cluster.core))
    katonode.install(sandbox, progress)
