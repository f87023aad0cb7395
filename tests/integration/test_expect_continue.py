"""`Expect: 100-continue`: the gateway asks for a body only once it would read it, so a
request it refuses on its headers (credentials, size) never sends its body. Spoken over a
raw connection, as aiohttp's client does not wait for the interim answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tams_stack.stack import Stack
from tams_stack.testing import SpecValidator

from .helpers import get_json, put_flow, video_flow


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, stack: Stack) -> RawConnection:
        gateway = urlsplit(stack.gateway_url)
        return cls(*await asyncio.open_connection(gateway.hostname, gateway.port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        """The next answer, interim or final: status, headers (lower-case names), body."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = head.decode().split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)
        }
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 10) if length else b""
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        self.writer.close()


def request_head(path: str, length: int, authorization: str | None, expect: str) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: tams",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        f"Expect: {expect}",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def flow_with_storage(http: aiohttp.ClientSession) -> str:
    flow = video_flow()
    await put_flow(http, flow)
    return str(flow["id"])


async def test_the_body_is_asked_for_once_it_would_be_read(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    flow_id = await flow_with_storage(http)
    body = json.dumps({"limit": 1}).encode()
    authorization = tams_stack.client_headers()["Authorization"]
    connection = await RawConnection.open(tams_stack)
    try:
        await connection.send(
            request_head(f"/flows/{flow_id}/storage", len(body), authorization, "100-continue")
        )
        status, _, _ = await connection.answer()
        assert status == 100
        await connection.send(body)
        status, headers, answer = await connection.answer()
        assert status == 201, answer
        assert len(json.loads(answer)["media_objects"]) == 1
        assert headers.get("connection", "keep-alive").lower() != "close"
    finally:
        connection.close()


async def refused_before_the_body(
    stack: Stack, path: str, length: int, authorization: str | None, expect: str = "100-continue"
) -> tuple[int, dict[str, Any]]:
    """A request refused on its headers: its final answer comes without `100 Continue`, and
    says the connection will close, as the unsent body could not be told from a next
    request."""
    connection = await RawConnection.open(stack)
    try:
        await connection.send(request_head(path, length, authorization, expect))
        status, headers, body = await connection.answer()
        assert status != 100
        assert headers["connection"].lower() == "close"
        error: dict[str, Any] = json.loads(body)
        return status, error
    finally:
        connection.close()


async def test_a_request_refused_on_its_headers_sends_no_body(
    http: aiohttp.ClientSession, tams_stack: Stack, spec: SpecValidator
) -> None:
    flow_id = await flow_with_storage(http)
    path = f"/flows/{flow_id}/segments"
    authorization = tams_stack.client_headers()["Authorization"]

    if authorization:
        status, error = await refused_before_the_body(tams_stack, path, 100, None)
        assert status == 401, error
        spec.validate(error, "error.json")

    limit = 16 * 1024 * 1024  # TAMS_MAX_BODY_BYTES's default, which the test stack keeps
    status, error = await refused_before_the_body(tams_stack, path, limit + 1, authorization)
    assert status == 413, error
    spec.validate(error, "error.json")

    status, error = await refused_before_the_body(
        tams_stack, path, 100, authorization, expect="something-else"
    )
    assert status == 417, error
    assert "100-continue" in error["summary"]

    assert (await get_json(http, f"/flows/{flow_id}/segments")) == []
