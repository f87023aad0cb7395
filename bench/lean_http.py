"""A minimal HTTP/1.1 keep-alive client, for generating load on the same machine as the stack.

On a 2-core machine the load generator competes with the stack for the same CPU, so its
cost per request is subtracted from what the stack can show. aiohttp's client costs about
0.2 ms of CPU per request; this one sends prepared bytes on a pooled connection and reads
the status line, `Content-Length` and body, for a fraction of that. It speaks only what the
gateway answers with (a `Content-Length` body, keep-alive), and fails loudly otherwise.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any, cast
from urllib.parse import urlsplit


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self._status = 0
        self._body_at = -1
        self._length = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc or ConnectionResetError("connection closed"))

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and self._answer is None
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._answer

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._body_at < 0:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            self._status = int(head[0].split(" ", 2)[1])
            fields = dict(line.split(":", 1) for line in head[1:])
            lengths = [v for k, v in fields.items() if k.lower() == "content-length"]
            if not lengths:
                raise RuntimeError(f"a response without Content-Length: {head[0]}")
            self._length = int(lengths[0])
            self._body_at = end + 4
        if len(self._buffer) < self._body_at + self._length:
            return
        body = bytes(self._buffer[self._body_at : self._body_at + self._length])
        del self._buffer[: self._body_at + self._length]
        self._body_at = -1
        answer, self._answer = self._answer, None
        if answer is not None:
            answer.set_result((self._status, body))


class LeanClient:
    """Requests to one origin over a pool of keep-alive connections."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        host = f"{self.host}:{self.port}"
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._headers = f"Host: {host}\r\n{extra}".encode("latin-1")
        self._idle: deque[_Connection] = deque()

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Send one request; returns the status and the body."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nContent-Length: {len(payload)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        connection = self._idle.popleft() if self._idle else await self._connect()
        status, answer = await connection.send(head.encode() + self._headers + b"\r\n" + payload)
        if connection.transport is not None:
            self._idle.append(connection)
        return status, answer

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self.host, self.port)
        return connection

    def close(self) -> None:
        while self._idle:
            connection = self._idle.popleft()
            if connection.transport is not None:
                connection.transport.close()
