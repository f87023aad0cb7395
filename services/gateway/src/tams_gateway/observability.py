"""Request metrics by route template (`/flows/{flow_id}`), never by raw path."""

from __future__ import annotations

import time

from aiohttp import web

from tams_gateway.errors import Handler
from tams_runtime.metrics import HTTP_REQUEST_SECONDS


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        HTTP_REQUEST_SECONDS.labels(
            route_template(request), request.method, f"{status // 100}xx"
        ).observe(time.perf_counter() - started)
