"""Replies travel straight from the owning service to the gateway that waits for them.

A command's `reply_to` is the address of its gateway's reply listener (`tcp://host:port`).
The service sends each reply there as soon as the command's change is committed to its
store, over one TCP connection per gateway, as one line of JSON per reply. Sending replies
through Kafka instead cost each write two more broker hops (the replies' produce and the
gateway's fetch, each waiting up to the fetch interval on tansu) and a consumer polling the
broker in every gateway: measured, 20-25% of the stack's CPU per segment registration
(docs/benchmarks.md).

Nothing is lost if a reply is: the change is in the store, its events and the offsets follow
through Kafka, and the gateway answers 504 at its deadline (the command may have been
applied), as it would for a gateway that restarted while waiting. A reply cannot be forged
without the command's id, a random UUID that only the gateway and the broker have seen.

The same connection carries wake-ups the other way. A service whose command consumer rests
while it has nothing to read (`KafkaSettings.quiet_after_ms`, for tansu, which answers a
waiting fetch only when its wait expires) opens each connection with `listen <topic>`; the
gateway then writes `wake <topic>` once it has sent a command to that topic (at most one per
topic every 10 ms: a woken consumer reads on for a while by itself), and the consumer fetches
at once instead of at its next slow poll. A lost wake-up only delays a command until that
poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import cast
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

SCHEME = "tcp"
# A reply is a few hundred bytes (a bulk registration's failures, a deletion request): a
# line far longer than this means the peer is not a TAMS service.
MAX_REPLY_BYTES = 16 * 1024 * 1024
# Lines that are not replies (a reply is a JSON object).
LISTEN = b"listen "
WAKE = b"wake "
# At most one wake-up per topic this often. A woken consumer reads on for its
# `quiet_after_ms` (20 ms at least, KafkaSettings) before it rests again, so it finds the
# commands sent meanwhile itself; under load this keeps wake-ups to 100 a second at most.
WAKE_INTERVAL_S = 0.01


def reply_address(host: str, port: int) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{SCHEME}://{host}:{port}"


def parse_reply_address(address: str) -> tuple[str, int]:
    """`tcp://host:port` → (host, port); ValueError for anything else."""
    parts = urlsplit(address)
    if parts.scheme != SCHEME or not parts.hostname or parts.port is None:
        raise ValueError(f"not a reply address: {address!r}")
    return parts.hostname, parts.port


class ReplyListener:
    """The gateway's end: accepts services' connections and hands each reply line on."""

    def __init__(self, host: str, port: int, on_reply: Callable[[bytes], None]) -> None:
        self.host = host
        self.port = port
        self.on_reply = on_reply
        self._server: asyncio.Server | None = None
        self._readers: set[_LineReader] = set()
        self._to_wake: set[str] = set()
        self._woken_at: dict[str, float] = {}

    async def start(self) -> int:
        """Listen; returns the port (the one the system chose when `port` is 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, self.host, self.port)
        return int(self._server.sockets[0].getsockname()[1])

    def _accept(self) -> _LineReader:
        return _LineReader(self.on_reply, self._readers)

    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    def wake(self, topic: str) -> None:
        """Tell the services listening on `topic` that a command waits there: at most once
        per topic every `WAKE_INTERVAL_S`, however many commands were sent meanwhile."""
        now = time.monotonic()
        if now - self._woken_at.get(topic, -WAKE_INTERVAL_S) < WAKE_INTERVAL_S:
            return
        self._woken_at[topic] = now
        if not self._to_wake:
            asyncio.get_running_loop().call_soon(self._send_wake_ups)
        self._to_wake.add(topic)

    def _send_wake_ups(self) -> None:
        topics, self._to_wake = self._to_wake, set()
        for reader in self._readers:
            for topic in reader.listening & topics:
                reader.write(WAKE + topic.encode() + b"\n")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Services hold their connections open: close them, or wait_closed never returns.
            for reader in list(self._readers):
                reader.close()
            await self._server.wait_closed()
            self._server = None


class _LineReader(asyncio.Protocol):
    def __init__(self, on_line: Callable[[bytes], None], open_readers: set[_LineReader]) -> None:
        self.on_line = on_line
        self.open_readers = open_readers
        self.pending = bytearray()
        self.transport: asyncio.WriteTransport | None = None
        # Command topics whose consumer at the other end wants wake-ups.
        self.listening: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not subclass asyncio's.
        self.transport = cast(asyncio.WriteTransport, transport)
        self.open_readers.add(self)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open_readers.discard(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.pending += data
        end = self.pending.rfind(b"\n")
        if end < 0:
            if len(self.pending) > MAX_REPLY_BYTES and self.transport is not None:
                log.warning("closing a reply connection: a line longer than the limit")
                self.transport.close()
            return
        complete = bytes(self.pending[:end])
        del self.pending[: end + 1]
        for line in complete.split(b"\n"):
            if line.startswith(LISTEN):
                self.listening.add(line[len(LISTEN) :].decode(errors="replace"))
            else:
                self.on_line(line)


class ReplySender:
    """The service's end: one connection per gateway, opened on first use, kept open.

    `send` never waits: while a connection is being opened its replies queue behind it, and
    if it cannot be opened they are dropped (logged), so a gateway that went away never holds
    up the commands of the others.
    """

    def __init__(
        self,
        connect_timeout_s: float = 2.0,
        max_buffered_bytes: int = 8 * 1024 * 1024,
        *,
        listen: str | None = None,
        on_wake: Callable[[], None] = lambda: None,
    ) -> None:
        """With `listen`, each connection asks its gateway for wake-ups about that command
        topic, and `on_wake` is called for each."""
        self.connect_timeout_s = connect_timeout_s
        self.max_buffered_bytes = max_buffered_bytes
        self.listen = listen
        self.on_wake = on_wake
        self._links: dict[str, _Link] = {}
        self._connecting: set[asyncio.Task[None]] = set()

    def send(self, replies: Iterable[tuple[str, bytes]]) -> None:
        """Send each (address, reply JSON) pair; a pair whose address is not a reply address
        is dropped and logged."""
        lines: dict[str, list[bytes]] = {}
        for address, reply in replies:
            lines.setdefault(address, []).append(reply)
        for address, batch in lines.items():
            link = self._links.get(address) or self._open(address)
            if link is not None:
                link.write(b"\n".join(batch) + b"\n")

    def _open(self, address: str) -> _Link | None:
        try:
            host, port = parse_reply_address(address)
        except ValueError:
            log.warning("dropping a reply to an unknown address", extra={"address": address})
            return None
        link = _Link(self.max_buffered_bytes)
        link.on_closed = lambda: self._forget(address, link)
        if self.listen is not None:
            link.write(LISTEN + self.listen.encode() + b"\n")
            link.wake_up = WAKE + self.listen.encode()
            link.on_wake = self.on_wake
        self._links[address] = link
        task = asyncio.create_task(self._connect(address, host, port, link))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)
        return link

    async def _connect(self, address: str, host: str, port: int, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await loop.create_connection(lambda: link, host, port)
        except (OSError, TimeoutError) as exc:
            log.warning(
                "could not reach a gateway; its replies are dropped and its requests time out",
                extra={"address": address, "replies": link.dropped(), "error": str(exc)},
            )
            self._forget(address, link)

    def _forget(self, address: str, link: _Link) -> None:
        if self._links.get(address) is link:
            del self._links[address]

    async def stop(self) -> None:
        for task in list(self._connecting):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for link in list(self._links.values()):
            link.close()
        self._links.clear()


class _Link(asyncio.Protocol):
    """One connection to a gateway; writes made before it is open wait in `queued`."""

    def __init__(self, max_buffered_bytes: int) -> None:
        self.max_buffered_bytes = max_buffered_bytes
        self.on_closed: Callable[[], None] = lambda: None
        self.transport: asyncio.WriteTransport | None = None
        self.queued: list[bytes] = []
        # The wake-up line this link listens for, and what to call on one.
        self.wake_up: bytes | None = None
        self.on_wake: Callable[[], None] = lambda: None
        self._incoming = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not subclass asyncio's.
        self.transport = cast(asyncio.WriteTransport, transport)
        if self.queued:
            self.transport.write(b"".join(self.queued))
            self.queued.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_closed()

    def data_received(self, data: bytes) -> None:
        """Wake-ups from the gateway (nothing else comes this way)."""
        self._incoming += data
        end = self._incoming.rfind(b"\n")
        if end < 0:
            if len(self._incoming) > 4096:
                self._incoming.clear()
            return
        lines = bytes(self._incoming[:end]).split(b"\n")
        del self._incoming[: end + 1]
        if self.wake_up is not None and self.wake_up in lines:
            self.on_wake()

    def write(self, data: bytes) -> None:
        if self.transport is None:
            self.queued.append(data)
        elif self.transport.get_write_buffer_size() > self.max_buffered_bytes:
            # The gateway stopped reading: replies to it are worthless by now.
            log.warning("closing a reply connection the gateway does not read")
            self.transport.abort()
        else:
            self.transport.write(data)

    def dropped(self) -> int:
        count = sum(chunk.count(b"\n") for chunk in self.queued if not chunk.startswith(LISTEN))
        self.queued.clear()
        return count

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
