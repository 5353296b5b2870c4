"""The sandbox's haproxy configuration (kato/sandbox/loadbalancer.py); haproxy itself checks
it on the core node (`haproxy -c`) when `kato sandbox up` installs it."""

from __future__ import annotations

from kato.sandbox.loadbalancer import PORT, haproxy_config, hook_document


def test_every_router_is_a_checked_server_of_one_backend() -> None:
    text = haproxy_config([("node2", "198.18.0.12"), ("node3", "198.18.0.13")])
    assert "    server node2 198.18.0.12:80 check\n" in text
    assert "    server node3 198.18.0.13:80 check\n" in text
    assert "option httpchk GET /healthz" in text and f"bind :{PORT}" in text
    assert "stats socket /run/haproxy/admin.sock mode 600 level admin" in text
    assert hook_document("node1")["drain"] == ["/usr/local/sbin/kato-lb", "drain", "{router}", "60"]
