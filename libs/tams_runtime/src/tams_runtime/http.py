"""Each service's own small HTTP server: /health, /ready and /metrics, and its internal API.

`/health` says the process and its event loop are alive. `/ready` runs the service's
dependency checks (broker, store, S3) and answers 503 naming the ones that fail, so an
orchestrator stops routing to an instance that could not do its work.

Anything else an internal service serves (the analytics service's API, which the gateway
forwards to) requires the shared internal token (`TAMS_INTERNAL_TOKEN`) as a bearer token:
clients reach it only through the gateway, which authenticates and authorises them first.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tams_runtime.settings import InternalSettings

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], Awaitable[bool]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Open on every port: orchestrators and Prometheus carry no credentials.
PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})


def internal_headers(settings: InternalSettings | None = None) -> dict[str, str]:
    """Headers a caller (the gateway) sends to an internal service's API."""
    token = (settings or InternalSettings()).token
    return {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}


def internal_token_middleware(settings: InternalSettings | None = None) -> Callable[..., Any]:
    """Requires `Authorization: Bearer <TAMS_INTERNAL_TOKEN>` on everything but the probes.
    Without a configured token every such request is refused (closed, not open)."""
    token = (settings or InternalSettings()).token
    expected = f"Bearer {token.get_secret_value()}".encode() if token else None
    if expected is None:
        log.warning("TAMS_INTERNAL_TOKEN is not set: this service's internal API refuses all")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PROBE_PATHS:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if expected is None or not hmac.compare_digest(given, expected):
            return web.json_response(
                {
                    "type": "Unauthorized",
                    "summary": "this internal API needs the service token (TAMS_INTERNAL_TOKEN)",
                },
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="tams-internal"'},
            )
        return await handler(request)

    return middleware


async def run_checks(checks: Mapping[str, ReadyCheck]) -> dict[str, bool]:
    async def one(check: ReadyCheck) -> bool:
        try:
            return await asyncio.wait_for(check(), 3)
        except Exception:
            return False

    names = list(checks)
    results = await asyncio.gather(*(one(checks[n]) for n in names))
    return dict(zip(names, results, strict=True))


def add_probe_routes(app: web.Application, service: str, checks: Mapping[str, ReadyCheck]) -> None:
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": service})

    async def ready(_: web.Request) -> web.Response:
        results = await run_checks(checks)
        ok = all(results.values())
        body = {
            "status": "ready" if ok else "not ready",
            "service": service,
            "checks": {name: "ok" if good else "failing" for name, good in results.items()},
        }
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)


async def start_site(
    app: web.Application, host: str, port: int, *, keepalive_timeout_s: float = 75.0
) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=keepalive_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
