"""The SSRF guard: which webhook destinations are refused, at registration and at delivery."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from tams_runtime.egress import (
    DestinationRefused,
    EgressPolicy,
    GuardedResolver,
    parse_networks,
    parse_ports,
)

STRICT = EgressPolicy()
LOOPBACK_ALLOWED = EgressPolicy(parse_networks("127.0.0.0/8, ::1/128"))


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.10.10",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",  # IPv4-mapped
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    with pytest.raises(DestinationRefused):
        STRICT.check_address(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    STRICT.check_address(address)


def test_the_allow_list_opens_networks_but_never_the_metadata_service() -> None:
    LOOPBACK_ALLOWED.check_address("127.0.0.1")
    LOOPBACK_ALLOWED.check_address("::1")
    with pytest.raises(DestinationRefused):
        LOOPBACK_ALLOWED.check_address("10.0.0.1")
    everything = EgressPolicy(parse_networks("0.0.0.0/0,::/0"))
    for metadata in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"):
        with pytest.raises(DestinationRefused, match="metadata"):
            everything.check_address(metadata)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://a.example/", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("https://user:pw@a.example/", "user info"),
        ("http:///path-only", "no host"),
        ("http://10.0.0.1:8080/", "not a public address"),
        ("http://[::1]/", "not a public address"),
        ("http://metadata.google.internal./computeMetadata/v1/", "metadata"),
        ("http://a.example:99999/", "not valid"),
        ("https://a.example/" + "x" * 9000, "longer than"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(DestinationRefused, match=reason):
        STRICT.check_url(url)


@pytest.mark.parametrize(
    "url", ["ftp://a.example/hook?sig=SECRET", "http://[::1/hook?k=SECRET", "http:///x?k=SECRET"]
)
def test_a_refusal_never_repeats_the_url(url: str) -> None:
    """Refusals are answered and logged; a URL's query may hold a secret."""
    with pytest.raises(DestinationRefused) as refused:
        STRICT.check_url(url)
    assert "SECRET" not in str(refused.value)


def test_host_names_are_left_to_delivery_time() -> None:
    assert STRICT.check_url("https://hooks.example.com/tams?x=1").host == "hooks.example.com"


def test_bad_allow_list_entries_are_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="not a CIDR"):
        parse_networks("10.0.0.0/8,localhost")


class FixedAnswers(AbstractResolver):
    """A DNS answer chosen by the test (DNS itself cannot be pointed anywhere here)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_the_resolver_refuses_names_that_resolve_inside() -> None:
    public = GuardedResolver(STRICT, FixedAnswers("93.184.215.14"))
    assert [r["host"] for r in await public.resolve("hooks.example.com", 443)] == ["93.184.215.14"]
    # DNS rebinding, or a name that simply points inside: refused at connect time.
    rebound = GuardedResolver(STRICT, FixedAnswers("93.184.215.14", "10.0.0.7"))
    with pytest.raises(DestinationRefused, match=r"10\.0\.0\.7"):
        await rebound.resolve("hooks.example.com", 443)
    with pytest.raises(DestinationRefused, match="metadata"):
        await public.resolve("metadata.google.internal", 80)


async def test_denied_ports_are_refused_inside_the_allowed_networks() -> None:
    """The local stack allows loopback receivers, but not its broker's or S3 server's ports:
    weed's master and filer APIs have no authentication (a webhook there could delete every
    object)."""
    local = EgressPolicy(parse_networks("127.0.0.0/8"), parse_ports("9333, 8888"))
    local.check_url("http://127.0.0.1:8080/hook")
    for url in ("http://127.0.0.1:9333/col/delete?collection=x", "http://127.0.0.2:8888/"):
        with pytest.raises(DestinationRefused, match="TAMS_WEBHOOKS_DENIED_PORTS"):
            local.check_url(url)
    # A name that points at one is refused when it is resolved, port and all.
    with pytest.raises(DestinationRefused, match="own servers"):
        await GuardedResolver(local, FixedAnswers("127.0.0.1")).resolve("sneaky.example", 9333)
    assert await GuardedResolver(local, FixedAnswers("127.0.0.1")).resolve("ok.example", 8080)
    # The same port on a public address is another machine's.
    EgressPolicy((), parse_ports("9333")).check_address("93.184.215.14", 9333)
    with pytest.raises(ValueError, match="not a port"):
        parse_ports("9333,http")
