"""One delivery attempt against real local HTTP servers: success, failures, limits, policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest_asyncio
from aiohttp import web

from tams_runtime.egress import EgressPolicy, parse_networks
from tams_runtime.settings import WebhookSettings
from tams_webhooks.sender import Attempt, Sender

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SETTINGS = WebhookSettings(timeout_s=0.5, connect_timeout_s=0.5, max_response_bytes=1024)


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/hook"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest_asyncio.fixture
async def sender() -> AsyncIterator[Sender]:
    sending = Sender(SETTINGS, EgressPolicy(parse_networks("127.0.0.0/8")))
    await sending.start()
    yield sending
    await sending.stop()


async def test_any_2xx_is_success_and_headers_are_sent(
    serve: Callable[[Handler], Awaitable[str]], sender: Sender
) -> None:
    seen: dict[str, str] = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(request.headers)
        assert await request.read() == b'{"a":1}'
        return web.Response(status=204)

    url = await serve(handler)
    result = await sender.post(url, b'{"a":1}', {"X-Key": "v"})
    assert result.ok and result.summary == "HTTP 204"
    assert seen["X-Key"] == "v" and seen["User-Agent"].startswith("tams-webhooks")


async def test_failures_say_why(serve: Callable[[Handler], Awaitable[str]], sender: Sender) -> None:
    async def error(_: web.Request) -> web.Response:
        return web.Response(status=503)

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/")

    async def silent(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    failed = await sender.post(await serve(error), b"{}", {})
    assert not failed.ok and not failed.permanent and "HTTP 503" in failed.summary
    # Redirects are not followed: they could lead anywhere.
    moved = await sender.post(await serve(redirect), b"{}", {})
    assert not moved.ok and "HTTP 302" in moved.summary
    slow = await sender.post(await serve(silent), b"{}", {})
    assert not slow.ok and "timeout" in slow.summary
    url = await serve(error)
    refused = await sender.post(url.replace(url.split(":")[2].split("/")[0], "1"), b"{}", {})
    assert not refused.ok and "could not connect" in refused.summary


async def test_big_answers_are_cut_off(
    serve: Callable[[Handler], Awaitable[str]], sender: Sender
) -> None:
    async def huge(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 1_000_000)

    result = await sender.post(await serve(huge), b"{}", {})
    assert result.ok


async def test_destinations_outside_the_policy_are_refused_for_good(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(_: web.Request) -> web.Response:
        raise AssertionError("must not be reached")

    url = await serve(handler)
    strict = Sender(SETTINGS, EgressPolicy())
    await strict.start()
    try:
        literal = await strict.post(url, b"{}", {})
        assert literal.permanent and "not a public address" in literal.summary
        # A name resolving to loopback is refused by the resolver, at connect time.
        named = await strict.post(url.replace("127.0.0.1", "localhost"), b"{}", {})
        assert named.permanent and "localhost resolves to" in named.summary
    finally:
        await strict.stop()


async def test_failing_receivers_do_not_hold_up_healthy_ones(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    """Every slot is held by attempts to a receiver that failed once and now never answers:
    first by retries, then by first attempts (its last attempt failed). A healthy receiver
    still gets its deliveries at once."""
    arrived = asyncio.Condition()
    count = 0

    async def fail_then_hang(request: web.Request) -> web.Response:
        nonlocal count
        async with arrived:
            count += 1
            arrived.notify_all()
        if count == 1:
            return web.Response(status=500)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=204)

    dead, healthy = await serve(fail_then_hang), await serve(answer)
    settings = WebhookSettings(timeout_s=30, max_concurrent_deliveries=2)
    sender = Sender(settings, EgressPolicy(parse_networks("127.0.0.0/8")))
    await sender.start()
    pending: list[asyncio.Task[Attempt]] = []

    async def hold_every_slot(retry: bool) -> None:
        expected = count + 2
        pending.extend(
            asyncio.create_task(sender.post(dead, b"{}", {}, retry=retry)) for _ in range(2)
        )
        async with asyncio.timeout(10), arrived:
            await arrived.wait_for(lambda: count >= expected)

    try:
        assert not (await sender.post(dead, b"{}", {})).ok  # HTTP 500: it failed last
        await hold_every_slot(retry=True)
        async with asyncio.timeout(10):
            assert (await sender.post(healthy, b"{}", {})).ok
        for task in pending:
            task.cancel()
        pending.clear()
        await hold_every_slot(retry=False)
        async with asyncio.timeout(10):
            assert (await sender.post(healthy, b"{}", {})).ok
        assert not any(task.done() for task in pending)
    finally:
        for task in pending:
            task.cancel()
        await sender.stop()
