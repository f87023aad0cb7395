"""The delivery HTTP client against real servers: framings, keep-alive, stale connections, TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from yarl import URL

from tams_runtime.egress import EgressPolicy, GuardedResolver, parse_networks
from tams_webhooks.http1 import Http1Client, ProtocolError, retry_after_seconds

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
LOOPBACK = EgressPolicy(parse_networks("127.0.0.0/8"))


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


@dataclass
class RawServer:
    """A plain asyncio server answering every request with the same bytes."""

    url: str = ""
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0


Start = Callable[..., Awaitable[RawServer]]


@pytest_asyncio.fixture
async def raw_server() -> AsyncIterator[Start]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply, tls: ssl.SSLContext | None = None) -> RawServer:
        found = RawServer()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            found.connections += 1
            try:
                while True:
                    found.requests.append(await read_request(reader))
                    await reply(reader, writer)
                    if writer.is_closing():
                        return
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        found.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/hook?x=1"
        return found

    yield start
    for server in servers:
        server.close()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[Http1Client]:
    found = Http1Client(GuardedResolver(LOOPBACK), connect_timeout_s=1, max_body=1024)
    yield found
    await found.close()


def answer(raw: bytes, close: bool = False) -> Reply:
    async def reply(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()
        if close:
            writer.close()

    return reply


async def test_request_shape_and_keep_alive(client: Http1Client, raw_server: Start) -> None:
    server = await raw_server(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    url = server.url
    for _ in range(3):
        assert (await client.post(URL(url), b'{"a":1}', {"X-Key": "v"})).status == 200
    assert server.connections == 1
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /hook?x=1 HTTP/1.1"
    assert f"Host: {URL(url).host}:{URL(url).port}" in lines
    assert "X-Key: v" in lines and "Content-Length: 7" in lines
    assert body == b'{"a":1}'


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ],
)
async def test_framings_keep_the_connection(
    client: Http1Client, raw_server: Start, raw: bytes
) -> None:
    server = await raw_server(answer(raw))
    first = (await client.post(URL(server.url), b"{}", {})).status
    assert first in (200, 201, 204)
    assert (await client.post(URL(server.url), b"{}", {})).status == first
    assert server.connections == 1


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "Retry-After: 7", 7.0),
        (503, "Retry-After: 0", 0.0),
        (429, "Retry-After: soon", None),
        (429, "Retry-After: \u00b2", None),  # a digit to str.isdigit, not to float()
        (503, "Retry-After: -5", None),
        (500, "Retry-After: 7", None),  # only a 429 or 503 asks to wait
        (429, "X-Other: 1", None),
    ],
)
async def test_a_retry_after_is_read_from_a_429_or_503(
    client: Http1Client, raw_server: Start, status: int, header: str, expected: float | None
) -> None:
    raw = f"HTTP/1.1 {status} No\r\n{header}\r\nContent-Length: 0\r\n\r\n".encode("latin-1")
    server = await raw_server(answer(raw))
    got = await client.post(URL(server.url), b"{}", {})
    assert (got.status, got.retry_after_s) == (status, expected)


def test_a_retry_after_date_is_seconds_from_now() -> None:
    now = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC).timestamp()
    assert retry_after_seconds("Thu, 26 Nov 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Thu, 26 Nov 2026 11:59:00 GMT", now) == 0.0  # past: at once
    assert retry_after_seconds("26 Nov 2026", now) is None


async def test_an_answer_ended_by_closing(client: Http1Client, raw_server: Start) -> None:
    server = await raw_server(answer(b"HTTP/1.0 500 Oops\r\n\r\nsomething broke", close=True))
    assert (await client.post(URL(server.url), b"{}", {})).status == 500
    assert (await client.post(URL(server.url), b"{}", {})).status == 500
    assert server.connections == 2


async def test_a_connection_closed_while_idle_is_replaced(
    client: Http1Client, raw_server: Start
) -> None:
    # Answers keep-alive, then closes anyway (as a receiver's idle timeout would).
    server = await raw_server(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", close=True))
    for _ in range(3):
        assert (await client.post(URL(server.url), b"{}", {})).status == 200
    assert len(server.requests) == 3 and server.connections == 3


async def test_big_answers_are_cut_off_and_not_reused(
    client: Http1Client, raw_server: Start
) -> None:
    body = b"x" * 100_000
    server = await raw_server(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + body))
    assert (await client.post(URL(server.url), b"{}", {})).status == 200
    assert (await client.post(URL(server.url), b"{}", {})).status == 200
    assert server.connections == 2


async def test_garbage_is_a_protocol_error(client: Http1Client, raw_server: Start) -> None:
    server = await raw_server(answer(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))
    with pytest.raises(ProtocolError, match="status line"):
        await client.post(URL(server.url), b"{}", {})


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        # Digits to `str.isdigit` (the head is read as Latin-1) that `int` refuses: a
        # ValueError escaping the parser left the sender's caller (the webhook worker)
        # restarting the delivery for ever, never counting an attempt.
        ("HTTP/1.1 \u00b200 OK\r\nContent-Length: 0\r\n\r\n", "status line"),
        ("HTTP/1.1 200 OK\r\nContent-Length: \u00b9\r\n\r\n", "Content-Length"),
    ],
)
async def test_non_ascii_digits_are_a_protocol_error(
    client: Http1Client, raw_server: Start, raw: str, match: str
) -> None:
    server = await raw_server(answer(raw.encode("latin-1")))
    with pytest.raises(ProtocolError, match=match):
        await client.post(URL(server.url), b"{}", {})


def self_signed(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1, and a client context trusting it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cafile=str(cert_file))
    return server, trusting


async def test_https_verifies_the_certificate(raw_server: Start, tmp_path: Path) -> None:
    server_tls, trusting = self_signed(tmp_path)
    server = await raw_server(
        answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), tls=server_tls
    )
    url = server.url
    trusted = Http1Client(
        GuardedResolver(LOOPBACK), connect_timeout_s=1, max_body=1024, ssl_context=trusting
    )
    default = Http1Client(GuardedResolver(LOOPBACK), connect_timeout_s=1, max_body=1024)
    try:
        assert (await trusted.post(URL(url), b"{}", {})).status == 200
        assert server.requests[0].startswith(b"POST /hook?x=1 HTTP/1.1")
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
            await default.post(URL(url), b"{}", {})
    finally:
        await trusted.close()
        await default.close()
