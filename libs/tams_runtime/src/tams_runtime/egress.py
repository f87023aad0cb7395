"""Where the server may send HTTP requests on a client's behalf (webhook receivers): SSRF guard.

A webhook URL is the client's choice, so without a guard the server can be made to POST to
its own internal network: the cloud metadata service, the broker, the database, admin ports.
The rule: http or https, no user info in the URL, and every address the host name resolves
to must be a public (globally routable) unicast address, unless it lies in a network the
operator allow-lists (`TAMS_WEBHOOKS_ALLOWED_NETWORKS`, e.g. loopback for local receivers).
Cloud metadata addresses are refused even then, and so are the ports the operator denies in
those networks (`TAMS_WEBHOOKS_DENIED_PORTS`: the deployment's own servers there).

The address check runs on the address actually connected to: `GuardedResolver` is the
resolver of the delivery HTTP client, so a name that resolves to a public address when the
webhook is registered and to an internal one later (DNS rebinding) is still refused. Literal
IP addresses in URLs never reach a resolver, so they are checked before each request too.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from tams_runtime.settings import WebhookSettings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# As `tams_schema.models.common.MAX_URL_LENGTH`: presigned URLs with a session token are long.
MAX_URL_LENGTH = 8192
# Instance metadata endpoints (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba): never reachable.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})


class DestinationRefused(OSError):
    """The URL or the address it resolves to is not one the server may send requests to."""


def parse_networks(raw: str) -> tuple[Network, ...]:
    networks = []
    for item in raw.split(","):
        item = item.strip()
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError as exc:
                raise ValueError(f"TAMS_WEBHOOKS_ALLOWED_NETWORKS: {item!r} is not a CIDR") from exc
    return tuple(networks)


def parse_ports(raw: str) -> frozenset[int]:
    ports = set()
    for item in raw.split(","):
        item = item.strip()
        if item:
            if not item.isdigit() or not 0 < int(item) < 65536:
                raise ValueError(f"TAMS_WEBHOOKS_DENIED_PORTS: {item!r} is not a port")
            ports.add(int(item))
    return frozenset(ports)


def _literal_ip(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class EgressPolicy:
    allowed_networks: tuple[Network, ...] = ()
    denied_ports: frozenset[int] = frozenset()

    @classmethod
    def from_settings(cls, settings: WebhookSettings | None = None) -> EgressPolicy:
        settings = settings or WebhookSettings()
        return cls(parse_networks(settings.allowed_networks), parse_ports(settings.denied_ports))

    def check_address(self, address: str | Address, port: int | None = None) -> None:
        """Raise `DestinationRefused` naming the reason unless `address` (and `port`, when
        known) may be sent to."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip in METADATA_ADDRESSES:
            raise DestinationRefused(f"{ip} is a cloud metadata address")
        if any(ip in network for network in self.allowed_networks):
            if port in self.denied_ports:
                raise DestinationRefused(
                    f"port {port} of {ip} is one of this deployment's own servers "
                    "(TAMS_WEBHOOKS_DENIED_PORTS)"
                )
            return
        if ip.is_multicast:
            raise DestinationRefused(f"{ip} is a multicast address")
        if not ip.is_global:
            raise DestinationRefused(
                f"{ip} is not a public address (private, loopback, link-local or reserved); "
                "allow its network with TAMS_WEBHOOKS_ALLOWED_NETWORKS"
            )

    def check_url(self, raw: str) -> URL:
        """The URL's shape, and its host if that is a literal address or a metadata name.
        Host names are resolved and checked when a request is made."""
        if len(raw) > MAX_URL_LENGTH:
            raise DestinationRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
        try:
            url = URL(raw)
        except ValueError as exc:
            raise DestinationRefused(f"the URL is not valid: {exc}") from exc
        # The URL itself is never repeated: its query may hold a secret, and refusals are
        # answered and logged.
        if url.scheme not in ("http", "https"):
            raise DestinationRefused("the URL must be an http or https URL")
        if not url.host:
            raise DestinationRefused("the URL has no host")
        if url.user is not None or url.password is not None:
            raise DestinationRefused("the URL must not carry user info (credentials)")
        try:
            _ = url.port
        except ValueError as exc:
            raise DestinationRefused("the URL has an invalid port") from exc
        host = url.host.rstrip(".").lower()
        if host in METADATA_HOSTS:
            raise DestinationRefused(f"{host} is a cloud metadata host")
        literal = _literal_ip(host)
        if literal is not None:
            self.check_address(literal, url.port)
        return url


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses the whole answer if any address
    is not allowed (a mixed answer could be used to reach the internal one)."""

    def __init__(self, policy: EgressPolicy, resolver: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.resolver = resolver or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.rstrip(".").lower() in METADATA_HOSTS:
            raise DestinationRefused(f"{host} is a cloud metadata host")
        results = await self.resolver.resolve(host, port, family)
        for result in results:
            try:
                self.policy.check_address(result["host"], result["port"] or port)
            except DestinationRefused as exc:
                raise DestinationRefused(f"{host} resolves to {exc}") from None
        return results

    async def close(self) -> None:
        await self.resolver.close()
