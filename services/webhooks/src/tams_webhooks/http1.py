"""A small HTTP/1.1 client for webhook deliveries: POST a body, read the status, keep the
connection for the next delivery.

Why not aiohttp's client: a delivery fans out to every webhook, so the CPU spent per request
decides how long the last receiver waits. aiohttp's client costs about 0.11 ms of CPU per
POST here (request and response objects, cookie, redirect, tracing and timer machinery); this
one needs a third of that, and a webhook POST needs none of the rest: no redirects (refused
on purpose), no cookies, no proxies, no compression, no request streaming.

What it does: one request at a time per connection; idle connections pooled per
(scheme, host, port) and dropped when the peer closes them; a request on a reused connection
that the peer had closed meanwhile (no response byte came back) is sent once more on a new
connection; responses framed by Content-Length, chunked encoding, or the connection closing;
1xx interim responses skipped; the response body read up to a cap, beyond which the
connection is dropped; TLS with certificate verification (the system's CAs); host names
resolved through the given resolver (the SSRF guard) and the resolved addresses tried in turn.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import cast

from aiohttp.abc import AbstractResolver
from yarl import URL

MAX_HEAD_BYTES = 64 * 1024
IDLE_FOR_S = 30.0  # reuse an idle connection only this long (receivers' keep-alive limits)


class ProtocolError(Exception):
    """The receiver's answer is not HTTP/1.x."""


class ConnectFailed(OSError):
    """No connection could be made to any of the host's addresses."""


class StaleConnection(ConnectionError):
    """A reused connection was closed by the peer before answering."""


@dataclass(frozen=True)
class Answer:
    status: int
    reusable: bool
    # A 429 or 503's `Retry-After`, in seconds from now (None: none, or not understood).
    retry_after_s: float | None = None


def _digits(value: str) -> bool:
    """ASCII digits only: `str.isdigit` also takes `²` or `¹`, which `int` and `float`
    refuse (a ValueError out of `data_received`, not a ProtocolError)."""
    return value.isascii() and value.isdigit()


def retry_after_seconds(value: str, now: float | None = None) -> float | None:
    """RFC 9110 `Retry-After`: delay-seconds or an HTTP-date; None if it is neither."""
    value = value.strip()
    if _digits(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP-date is always GMT; one without a zone is not one
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Exchange(asyncio.Protocol):
    """One connection: sends a request, parses the response head and frames its body."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Answer] | None = None
        self._buffer = bytearray()
        self._received_any = False
        self._state = "head"
        self._status = 0
        self._retry_after_s: float | None = None
        self._keep_alive = False
        self._remaining = 0  # bytes left of a fixed-length body or of the current chunk
        self._body_bytes = 0

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream connection's transport: asyncio's or uvloop's, which is not a subclass
        # of asyncio.Transport but has the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self._close()  # nothing was asked: a peer talking out of turn is not reused
            return
        self._received_any = True
        self._buffer += data
        try:
            self._parse()
        except ProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if self._state == "until_close":
                self._finish(reusable=False)
            elif not self._received_any:
                self._fail(StaleConnection("the connection was closed before any answer"))
            else:
                self._fail(ConnectionResetError("the connection closed mid-answer"))
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if self._state == "until_close" and exc is None:
                self._finish(reusable=False)
            elif not self._received_any:
                self._fail(StaleConnection(f"the connection was lost before any answer: {exc}"))
            else:
                self._fail(exc or ConnectionResetError("the connection was lost mid-answer"))

    # --- the exchange ------------------------------------------------------------------

    async def exchange(self, request: bytes) -> Answer:
        assert self.transport is not None
        if self.closed or self.transport.is_closing():
            raise StaleConnection("the idle connection was closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self._buffer.clear()
        self._received_any = False
        self._state = "head"
        self._body_bytes = 0
        self.transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self._close()

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: BaseException) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self._close()

    def _finish(self, reusable: bool) -> None:
        reusable = reusable and self._keep_alive and not self._buffer and not self.closed
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(Answer(self._status, reusable, self._retry_after_s))
        if not reusable:
            self._close()

    def _parse(self) -> None:
        while True:
            if self._state == "head":
                if not self._parse_head():
                    return
            elif self._state == "fixed":
                taken = min(self._remaining, len(self._buffer))
                del self._buffer[:taken]
                self._remaining -= taken
                if self._count(taken):
                    return
                if self._remaining == 0:
                    self._finish(reusable=True)
                return
            elif self._state == "until_close":
                taken = len(self._buffer)
                self._buffer.clear()
                self._count(taken)
                return
            elif self._state in ("chunk_size", "chunk_data", "chunk_crlf", "trailer"):
                if not self._parse_chunked():
                    return
            else:  # done
                return

    def _count(self, taken: int) -> bool:
        """Count body bytes; past the cap, stop reading and drop the connection."""
        self._body_bytes += taken
        if self._body_bytes > self.max_body:
            self._keep_alive = False
            self._state = "done"
            self._finish(reusable=False)
            return True
        return False

    def _parse_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("the response head is larger than 64 KiB")
            return False
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not _digits(parts[1]):
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:100]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"malformed header line: {line[:100]!r}")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if 100 <= status < 200:
            return True  # an interim answer (100 Continue, 103...): the real one follows
        self._status = status
        retry_after = headers.get("retry-after") if status in (429, 503) else None
        self._retry_after_s = None if retry_after is None else retry_after_seconds(retry_after)
        connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        self._keep_alive = parts[0] == "HTTP/1.1" and "close" not in connection
        if status in (204, 304):
            self._state = "done"
            self._finish(reusable=True)
            return False
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = "chunk_size"
        elif "content-length" in headers:
            length = headers["content-length"].split(",")[0].strip()
            if not _digits(length):
                raise ProtocolError(f"invalid Content-Length {length[:40]!r}")
            self._remaining = int(length)
            self._state = "fixed"
            if self._remaining == 0:
                self._state = "done"
                self._finish(reusable=True)
                return False
        else:
            self._state = "until_close"
            self._keep_alive = False
        return True

    def _parse_chunked(self) -> bool:
        """Advance through chunked framing; False when more bytes are needed."""
        if self._state == "chunk_size":
            end = self._buffer.find(b"\r\n")
            if end < 0:
                if len(self._buffer) > 1024:
                    raise ProtocolError("a chunk size line is too long")
                return False
            size_text = bytes(self._buffer[:end]).split(b";")[0].strip()
            del self._buffer[: end + 2]
            try:
                self._remaining = int(size_text, 16)
            except ValueError as exc:
                raise ProtocolError(f"invalid chunk size {size_text[:20]!r}") from exc
            self._state = "trailer" if self._remaining == 0 else "chunk_data"
            return True
        if self._state == "chunk_data":
            taken = min(self._remaining, len(self._buffer))
            del self._buffer[:taken]
            self._remaining -= taken
            if self._count(taken):
                return False
            if self._remaining:
                return False
            self._state = "chunk_crlf"
            return True
        if self._state == "chunk_crlf":
            if len(self._buffer) < 2:
                return False
            if self._buffer[:2] != b"\r\n":
                raise ProtocolError("a chunk is not followed by CRLF")
            del self._buffer[:2]
            self._state = "chunk_size"
            return True
        # trailer: header lines until an empty one
        end = self._buffer.find(b"\r\n")
        if end < 0:
            return False
        del self._buffer[: end + 2]
        if end == 0:
            self._state = "done"
            self._finish(reusable=True)
            return False
        return True


class Http1Client:
    """POSTs with pooled keep-alive connections. Not thread-safe; one event loop."""

    def __init__(
        self,
        resolver: AbstractResolver,
        *,
        connect_timeout_s: float,
        max_body: int,
        ssl_context: ssl.SSLContext | None = None,
        idle_per_host: int = 128,
    ) -> None:
        self.resolver = resolver
        self.connect_timeout_s = connect_timeout_s
        self.max_body = max_body
        self.ssl_context = ssl_context
        # Many webhooks often point at one receiver host: keep as many idle connections to
        # it as deliveries may be in flight, or each fan-out would open connections anew.
        self.idle_per_host = idle_per_host
        self._idle: dict[tuple[str, str, int], list[_Exchange]] = {}

    async def close(self) -> None:
        for pool in self._idle.values():
            for connection in pool:
                connection.close()
        self._idle.clear()
        await self.resolver.close()

    async def post(self, url: URL, body: bytes, headers: Mapping[str, str]) -> Answer:
        """The answer (its status, and a 429 or 503's `Retry-After`). Raises ConnectFailed,
        OSError, ProtocolError (the caller bounds the whole call with its own timeout)."""
        host = url.raw_host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        key = (url.scheme, host, port)
        request = _request_bytes(url, host, port, body, headers)
        connection = self._take_idle(key)
        answer: Answer | None = None
        try:
            if connection is not None:
                try:
                    answer = await connection.exchange(request)
                except StaleConnection:
                    connection = None  # closed by the peer while idle: once more, anew
            if connection is None or answer is None:
                connection = await self._connect(url.scheme, host, port)
                answer = await connection.exchange(request)
        except BaseException:
            # Timed out, cancelled or failed mid-exchange: the connection is in an unknown
            # state, so it is not kept.
            if connection is not None:
                connection.close()
            raise
        if answer.reusable:
            self._put_idle(key, connection)
        return answer

    def _take_idle(self, key: tuple[str, str, int]) -> _Exchange | None:
        pool = self._idle.get(key)
        now = time.monotonic()
        while pool:
            connection = pool.pop()
            if not connection.closed and now - connection.idle_since < IDLE_FOR_S:
                return connection
            connection.close()
        return None

    def _put_idle(self, key: tuple[str, str, int], connection: _Exchange) -> None:
        pool = self._idle.setdefault(key, [])
        if len(pool) >= self.idle_per_host:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        pool.append(connection)

    async def _connect(self, scheme: str, host: str, port: int) -> _Exchange:
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == "https":
            tls = self.ssl_context or _default_ssl_context()
        async with asyncio.timeout(self.connect_timeout_s):
            results = await self.resolver.resolve(host, port, family=socket.AF_UNSPEC)
            errors: list[str] = []
            for result in results:
                try:
                    _, protocol = await loop.create_connection(
                        lambda: _Exchange(self.max_body),
                        host=result["host"],
                        port=result["port"] or port,
                        ssl=tls,
                        server_hostname=host if tls is not None else None,
                    )
                    return protocol
                except (OSError, ssl.SSLError) as exc:
                    errors.append(f"{result['host']}: {exc}")
        raise ConnectFailed("; ".join(errors) or f"{host} has no addresses")


_SSL: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    global _SSL
    if _SSL is None:
        _SSL = ssl.create_default_context()
    return _SSL


def _request_bytes(
    url: URL, host: str, port: int, body: bytes, headers: Mapping[str, str]
) -> bytes:
    host_header = f"[{host}]" if ":" in host else host
    if not url.is_default_port():
        host_header = f"{host_header}:{port}"
    lines = [
        f"POST {url.raw_path_qs or '/'} HTTP/1.1",
        f"Host: {host_header}",
        f"Content-Length: {len(body)}",
    ]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + body
