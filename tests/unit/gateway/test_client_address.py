"""X-Forwarded-For: only trusted proxies speak for the client, read right to left."""

from __future__ import annotations

import pytest

from gateway.client_address import client_address, parse_networks
from meterline.settings import GatewaySettings, Settings

LOOPBACK = parse_networks(["127.0.0.0/8", "::1"])
EDGE = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48"])


def test_no_trusted_proxies_means_the_socket_peer() -> None:
    assert client_address("127.0.0.1", b"203.0.113.7", ()) == "127.0.0.1"


def test_an_untrusted_peer_cannot_choose_its_address() -> None:
    assert client_address("198.51.100.9", b"203.0.113.7", LOOPBACK) == "198.51.100.9"


def test_a_trusted_peer_names_the_client() -> None:
    assert client_address("127.0.0.1", b"203.0.113.7", LOOPBACK) == "203.0.113.7"


def test_no_header_means_the_peer() -> None:
    assert client_address("127.0.0.1", None, LOOPBACK) == "127.0.0.1"
    assert client_address(None, b"203.0.113.7", LOOPBACK) is None


def test_the_rightmost_untrusted_hop_wins_over_what_the_client_wrote() -> None:
    # The client forged "1.1.1.1"; the edge proxy 10.0.0.5 appended the address it saw.
    chain = b"1.1.1.1, 203.0.113.7, 10.0.0.5"
    assert client_address("10.0.0.9", chain, EDGE) == "203.0.113.7"


def test_a_chain_of_only_trusted_hops_yields_its_origin() -> None:
    assert client_address("10.0.0.9", b"10.1.1.1, 10.0.0.5", EDGE) == "10.1.1.1"


def test_a_malformed_hop_that_must_be_read_means_the_socket_address() -> None:
    assert client_address("127.0.0.1", b"not-an-ip", LOOPBACK) == "127.0.0.1"
    assert client_address("127.0.0.1", b"203.0.113.7,", LOOPBACK) == "127.0.0.1"
    assert client_address("127.0.0.1", "café".encode(), LOOPBACK) == "127.0.0.1"
    assert client_address("10.0.0.9", b"203.0.113.7, bogus, 10.0.0.5", EDGE) == "10.0.0.9"


def test_garbage_left_of_the_client_is_never_read() -> None:
    assert client_address("127.0.0.1", b"<script>, 203.0.113.7", LOOPBACK) == "203.0.113.7"


def test_ipv6_hops_ports_and_mapped_addresses() -> None:
    assert client_address("::1", b"2001:db8::42", LOOPBACK) == "2001:db8::42"
    assert client_address("::1", b"[2001:db8::42]:51000", LOOPBACK) == "2001:db8::42"
    assert client_address("127.0.0.1", b"203.0.113.7:443", LOOPBACK) == "203.0.113.7"
    assert client_address("::ffff:127.0.0.1", b"203.0.113.7", LOOPBACK) == "203.0.113.7"
    chain = b"2001:db8::42, 2001:db8:ffff::1"
    assert client_address("10.0.0.9", chain, EDGE) == "2001:db8::42"


def test_settings_normalise_and_reject_cidrs() -> None:
    gateway = GatewaySettings(trusted_proxies=["127.0.0.1/8", "::1"])
    assert gateway.trusted_proxies == ["127.0.0.0/8", "::1/128"]
    assert Settings().gateway.trusted_proxies == []
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(gateway={"trusted_proxies": ["10.0.0.0/33"]})
    with pytest.raises(ValueError, match="not an IP network"):
        parse_networks(["localhost"])
