"""`/openapi.json`: this gateway's OpenAPI 3.1 document (docs/ext-openapi.md).

Open to any authenticated caller, whatever its scopes (like `/` and `/service`): the route
map is not shown to strangers (docs/decisions.md), and anyone who may sign in may know the
API. Built from the router at the first request (the router is frozen by then) and kept.
"""

from __future__ import annotations

import json

from aiohttp import web

from tams_gateway.auth.gate import GATE, Gate
from tams_gateway.context import GATEWAY
from tams_gateway.openapi.document import build_document

routes = web.RouteTableDef()


class DocumentCache:
    def __init__(self) -> None:
        self.body: bytes | None = None


DOCUMENT = web.AppKey("openapi_document", DocumentCache)


def accepted_schemes(gate: Gate) -> list[str]:
    """The security schemes this gateway accepts now; none when authentication is off."""
    if gate.disabled:
        return []
    schemes = []
    if gate.basic is not None:
        schemes.append("basic_auth")
    if gate.bearer is not None:
        schemes += ["bearer_token_auth", "url_token_auth"]
    # Authentication on but nothing configured refuses everyone; describe what it would take.
    return schemes or ["basic_auth", "bearer_token_auth", "url_token_auth"]


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    """This gateway's OpenAPI 3.1 document: every route it serves, generated from its router.
    Any authenticated caller may read it."""
    cache = request.app[DOCUMENT]
    if cache.body is None:
        # Cached for every caller, so not the request's own origin: without a public URL
        # the server is "/", this document's own origin.
        public_url = request.app[GATEWAY].settings.public_url
        document = build_document(
            request.app,
            schemes=accepted_schemes(request.app[GATE]),
            server_url=public_url.rstrip("/") if public_url else None,
        )
        cache.body = json.dumps(document, separators=(",", ":")).encode()
    return web.Response(body=cache.body, content_type="application/json")


def install(app: web.Application) -> None:
    app[DOCUMENT] = DocumentCache()
    app.add_routes(routes)
