"""Webhook receivers for the tests: real HTTP servers on loopback that record what they get."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web


@dataclass
class Request:
    """One POST as the receiver saw it, and how it answered."""

    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    received_at: float = field(default_factory=time.monotonic)
    # When the POST arrived (`received_at` is when it was answered).
    arrived_at: float = 0.0
    # The body's bytes as they came (what a signature covers).
    raw: bytes = b""

    @property
    def event_id(self) -> str:
        return self.headers["Tams-Event-Id"]

    @property
    def event_type(self) -> str:
        return str(self.body["event_type"])

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = self.body["event"]
        return event


class Receiver:
    """Answers 200 unless told otherwise: the `fail_next` next requests get `fail_status`
    (500) with `fail_headers`, then, with `hang`, none is answered;
    `delay_s` slows every answer down, and `hold` leaves the requests it picks unanswered."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.arrived = 0  # POSTs received, answered or not
        self.fail_next = 0
        # How a failure answers: its status and headers.
        self.fail_status = 500
        self.fail_headers: dict[str, str] = {}
        self.hang = False
        self.delay_s = 0.0
        # Given the body: True to leave that request unanswered, as `hang` does all of them.
        self.hold: Callable[[dict[str, Any]], bool] = lambda body: False
        # Requests being answered now, and the most there were at once.
        self.in_flight = 0
        self.most_at_once = 0
        self.url = ""
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        async with self._changed:
            self.arrived += 1
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
            self._changed.notify_all()
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        arrived_at = time.monotonic()
        raw = await request.read()
        body = json.loads(raw)
        # Failures first, so that `fail_next` then `hang` fails the next requests and holds
        # the ones after them, with nothing for the test to switch in between.
        failing = self.fail_next > 0
        if failing:
            self.fail_next -= 1
        elif self.hang or self.hold(body):
            await asyncio.Event().wait()  # never answers; the sender gives up on its timeout
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status, headers = (self.fail_status, self.fail_headers) if failing else (200, {})
        async with self._changed:
            self.requests.append(
                Request(dict(request.headers), body, status, raw=raw, arrived_at=arrived_at)
            )
            self._changed.notify_all()
        return web.Response(status=status, headers=headers)

    def delivered(self, keep: Callable[[Request], bool] = lambda r: True) -> list[Request]:
        """Successful deliveries, first receipt of each event only, in order of receipt."""
        seen: set[str] = set()
        found = []
        for request in self.requests:
            if request.status == 200 and request.event_id not in seen and keep(request):
                seen.add(request.event_id)
                found.append(request)
        return found

    async def wait_for(
        self,
        count: int,
        keep: Callable[[Request], bool] = lambda r: True,
        timeout: float = 15.0,
    ) -> list[Request]:
        """Wait until `count` distinct events matching `keep` were delivered."""
        await self.wait_until(lambda: len(self.delivered(keep)) >= count, timeout)
        return self.delivered(keep)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


class Webhooks:
    """Registers webhooks through the API and deletes them afterwards."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.ids: list[str] = []

    async def register(self, url: str, events: list[str], **fields: Any) -> dict[str, Any]:
        body = {"url": url, "events": events, **fields}
        async with self.http.post("/service/webhooks", json=body) as resp:
            assert resp.status == 201, await resp.text()
            created: dict[str, Any] = await resp.json()
        self.ids.append(created["id"])
        return created

    async def register_started(self, url: str, events: list[str], **fields: Any) -> dict[str, Any]:
        """Register a webhook and wait until its worker runs (`started`)."""
        created = await self.register(url, events, **fields)
        await self.wait_status(created["id"], "started")
        return created

    async def get(self, webhook_id: str) -> dict[str, Any]:
        async with self.http.get(f"/service/webhooks/{webhook_id}") as resp:
            assert resp.status == 200, await resp.text()
            found: dict[str, Any] = await resp.json()
            return found

    async def put(self, webhook: dict[str, Any], **changes: Any) -> aiohttp.ClientResponse:
        body = {k: v for k, v in {**webhook, **changes}.items() if k != "error"}
        async with self.http.put(f"/service/webhooks/{webhook['id']}", json=body) as resp:
            await resp.read()
            return resp

    async def wait_status(
        self, webhook_id: str, status: str, timeout: float = 15.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            webhook = await self.get(webhook_id)
            if webhook["status"] == status or time.monotonic() > deadline:
                assert webhook["status"] == status, webhook
                return webhook
            await asyncio.sleep(0.02)

    async def delete_all(self) -> None:
        for webhook_id in self.ids:
            async with self.http.delete(f"/service/webhooks/{webhook_id}") as resp:
                assert resp.status in (204, 404)
        self.ids.clear()
