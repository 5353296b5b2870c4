"""The sandbox's load balancer: Debian's haproxy on the core node, in front of the routers
(port 8080), with active checks of each router's /healthz and the runtime API that kato-lb
(kato/sandbox/lb_agent.py) drives when kato drains a router during a graceful upgrade."""

from __future__ import annotations

from pathlib import Path

from kato.config import Cluster
from kato.connect import connections
from kato.progress import Progress

PORT = 8080
CONFIG = "/etc/haproxy/haproxy.cfg"
HOOK = "/usr/local/sbin/kato-lb"
WRITE = 'cat > "$1.kato-tmp" && chmod "$2" "$1.kato-tmp" && mv "$1.kato-tmp" "$1"'


def haproxy_config(routers: list[tuple[str, str]]) -> str:
    """haproxy.cfg: one backend of the routers, checked every 500 ms on /healthz."""
    servers = "".join(f"    server {name} {address}:80 check\n" for name, address in routers)
    return (
        "# written by `kato sandbox up`: haproxy in front of the routers\n"
        "global\n"
        "    stats socket /run/haproxy/admin.sock mode 600 level admin\n"
        "    stats timeout 30s\n"
        "defaults\n"
        "    mode http\n"
        "    timeout connect 2s\n"
        "    timeout client 30s\n"
        "    timeout server 30s\n"
        "    option http-server-close\n"
        "    option redispatch\n"
        "    retries 3\n"
        "frontend apps\n"
        f"    bind :{PORT}\n"
        "    default_backend routers\n"
        "backend routers\n"
        "    balance roundrobin\n"
        "    option httpchk GET /healthz\n"
        "    http-check expect status 200\n"
        "    default-server inter 500ms fall 2 rise 2\n"
        f"{servers}"
    )


def hook_document(core: str) -> dict[str, object]:
    """The cluster file's load_balancer section for the sandbox."""
    return {
        "node": core,
        "drain": [HOOK, "drain", "{router}", "60"],
        "undrain": [HOOK, "undrain", "{router}", "60"],
        "timeout": 90,
    }


def install(cluster: Cluster, progress: Progress) -> None:
    """Configure and start haproxy on the core node (routers of the cluster file)."""
    routers = [(n.name, n.address) for n in cluster.with_role("router")]
    if not routers:
        return
    progress.step(f"haproxy on {cluster.core} in front of {', '.join(r for r, _ in routers)}")
    agent = Path(__file__).with_name("lb_agent.py").read_text()
    with connections(cluster) as conns:
        core = conns.get(cluster.core)
        core.run(("sh", "-c", WRITE, "sh", HOOK, "0755"), stdin=agent.encode())
        core.run(("sh", "-c", WRITE, "sh", CONFIG, "0644"), stdin=haproxy_config(routers).encode())
        core.run(("haproxy", "-c", "-q", "-f", CONFIG))
        core.run(("systemctl", "enable", "--quiet", "haproxy.service"))
        core.run(("systemctl", "restart", "haproxy.service"))
        core.run((HOOK, "undrain", routers[0][0], "60"))  # returns once haproxy sees it UP
