"""Each service's own small HTTP server: /health, /ready and /metrics.

`/health` says the process and its event loop are alive. `/ready` runs the service's
dependency checks (broker, store, S3) and answers 503 naming the ones that fail, so an
orchestrator stops routing to an instance that could not do its work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadyCheck = Callable[[], Awaitable[bool]]


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


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
