"""Sending a command to its owning service and turning the reply into an HTTP response."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tams_gateway.auth.gate import principal_of
from tams_gateway.context import GATEWAY
from tams_gateway.paging import public_base
from tams_runtime.bus import CommandBus
from tams_schema.envelopes import ErrorBody, Reply, with_message

# How long a client is asked to wait when the owning service is older than this gateway.
OLDER_SERVICE_RETRY_AFTER_S = 10


def older_service(reply: Reply) -> bool:
    """The owning service did not know the command: this gateway only sends names its own
    build's services know, so the service is of an older build (a rolling upgrade under way,
    or a rollback). It changed nothing; the request can be sent again once it is replaced."""
    body = reply.body
    return reply.status == 400 and isinstance(body, dict) and body.get("type") == "UnknownCommand"


def reply_response(reply: Reply, request: web.Request) -> web.Response:
    if older_service(reply):
        error = ErrorBody(
            type="ServiceUnavailable",
            summary=(
                "the service that applies this change runs an older version that cannot apply "
                "it (an upgrade under way?); nothing was changed, try again later"
            ),
        )
        return web.json_response(
            with_message(error.as_json()),
            status=503,
            headers={"Retry-After": str(OLDER_SERVICE_RETRY_AFTER_S)},
        )
    headers = dict(reply.headers)
    location = headers.get("Location")
    if location is not None and location.startswith("/"):
        # Services name a path; clients get an absolute URL, as in `Link` headers.
        base = public_base(request, request.app[GATEWAY].settings)
        headers["Location"] = f"{base}{location}"
    if reply.body is None or reply.status == 204:
        return web.Response(status=reply.status, headers=headers)
    headers["Content-Type"] = "application/json"
    body = with_message(reply.body) if reply.status >= 400 else reply.body
    return web.Response(status=reply.status, headers=headers, body=json.dumps(body).encode())


async def send(
    request: web.Request, topic: str, name: str, key: str, payload: dict[str, Any]
) -> web.Response:
    bus: CommandBus = request.app[BUS]
    principal = principal_of(request)
    reply = await bus.request(
        topic, name, key, payload, principal=principal.name if principal else None
    )
    return reply_response(reply, request)


BUS = web.AppKey("bus", CommandBus)
