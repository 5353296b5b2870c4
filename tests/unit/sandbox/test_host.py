"""Choosing a free address range."""

from __future__ import annotations

import ipaddress

import pytest

from kato.errors import AddressRangeTaken
from kato.sandbox import host


def taken(*networks: str) -> list[host.TakenRange]:
    return [host.TakenRange(ipaddress.ip_network(n), f"route {n}") for n in networks]


def test_the_first_free_range_is_picked() -> None:
    assert host.pick_free_subnet(taken("198.18.0.0/24", "198.18.1.5/32")) == "198.18.2.0/24"


def test_a_wide_route_covering_the_pool_leaves_no_range() -> None:
    with pytest.raises(AddressRangeTaken):
        host.pick_free_subnet(taken("198.16.0.0/12"))
