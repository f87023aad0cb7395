"""Replies from a service to a gateway over real loopback TCP (tams_runtime.replies)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from tams_runtime import replies
from tams_runtime.replies import ReplyListener, ReplySender, parse_reply_address, reply_address


class Received:
    """The gateway's reply callback, recording lines; `until(n)` waits for the nth."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self._arrived = asyncio.Event()

    def __call__(self, line: bytes) -> None:
        self.lines.append(line)
        self._arrived.set()

    async def until(self, count: int, deadline_s: float = 5.0) -> None:
        async with asyncio.timeout(deadline_s):
            while len(self.lines) < count:
                self._arrived.clear()
                await self._arrived.wait()


async def test_replies_arrive_in_order_including_those_sent_while_connecting() -> None:
    received = Received()
    listener = ReplyListener("127.0.0.1", 0, received)
    port = await listener.start()
    sender = ReplySender()
    address = reply_address("127.0.0.1", port)
    try:
        # The first two are sent before the connection exists; they wait for it.
        sender.send([(address, b'{"n":1}'), (address, b'{"n":2}')])
        sender.send([(address, b'{"n":3}')])
        await received.until(3)
        sender.send((address, b'{"n":%d}' % n) for n in range(4, 1004))
        await received.until(1003)
        assert received.lines == [b'{"n":%d}' % n for n in range(1, 1004)]
    finally:
        await sender.stop()
        await listener.stop()


async def test_a_line_longer_than_any_reply_closes_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replies, "MAX_REPLY_BYTES", 1000)
    received: list[bytes] = []
    listener = ReplyListener("127.0.0.1", 0, received.append)
    port = await listener.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x" * 5000)
        await writer.drain()
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the gateway
        writer.close()
        assert received == []
    finally:
        await listener.stop()


async def test_replies_to_an_address_that_is_not_one_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = ReplySender()
    with caplog.at_level(logging.WARNING, logger="tams_runtime.replies"):
        sender.send([("tams.replies.old-gateway", b"{}")])
    assert "dropping a reply to an unknown address" in caplog.text
    await sender.stop()


async def test_a_listener_stops_while_services_are_connected() -> None:
    received = Received()
    listener = ReplyListener("127.0.0.1", 0, received)
    port = await listener.start()
    sender = ReplySender()
    sender.send([(reply_address("127.0.0.1", port), b"{}")])
    await received.until(1)  # the service's connection is open
    async with asyncio.timeout(5):
        await listener.stop()
    assert not listener.serving()
    await sender.stop()


class Wakes:
    """Wake-ups received per topic; `until(expected)` waits for the counts to match."""

    def __init__(self, topics: list[str]) -> None:
        self.counts = dict.fromkeys(topics, 0)
        self._arrived = asyncio.Event()

    def of(self, topic: str) -> Callable[[], None]:
        def woken() -> None:
            self.counts[topic] += 1
            self._arrived.set()

        return woken

    async def until(self, expected: dict[str, int], deadline_s: float = 5.0) -> None:
        async with asyncio.timeout(deadline_s):
            while self.counts != expected:
                self._arrived.clear()
                await self._arrived.wait()


async def test_wake_ups_reach_the_services_listening_on_their_topic() -> None:
    received = Received()
    listener = ReplyListener("127.0.0.1", 0, received)
    address = reply_address("127.0.0.1", await listener.start())
    wakes = Wakes(["tams.segments.commands", "tams.catalog.commands"])
    senders = [ReplySender(listen=topic, on_wake=wakes.of(topic)) for topic in wakes.counts]
    try:
        for sender in senders:
            sender.send([(address, b'{"n":1}')])
        # Each connection asks for wake-ups before its first reply: it is listening now.
        await received.until(2)
        assert received.lines == [b'{"n":1}', b'{"n":1}']

        # Many commands in one turn of the loop: one wake-up.
        for _ in range(5):
            listener.wake("tams.segments.commands")
        await wakes.until({"tams.segments.commands": 1, "tams.catalog.commands": 0})
        listener.wake("tams.catalog.commands")
        listener.wake("tams.flows.commands")  # nobody listens: nothing is sent
        await wakes.until({"tams.segments.commands": 1, "tams.catalog.commands": 1})
    finally:
        for sender in senders:
            await sender.stop()
        await listener.stop()


def test_reply_addresses_round_trip_ipv4_ipv6_and_names() -> None:
    for host in ("10.1.2.3", "::1", "gateway-0.tams"):
        assert parse_reply_address(reply_address(host, 9190)) == (host, 9190)
    for bad in ("tams.replies.x", "http://gw:80", "tcp://gw"):
        with pytest.raises(ValueError):
            parse_reply_address(bad)
