"""OPTIONS and CORS (checklist §1.7: the spec defines neither).

OPTIONS on a known path is answered without credentials (a browser's preflight carries none):
204 with `Allow` listing the path's methods and, for an allowed `Origin`, the CORS preflight
headers. Actual responses to an allowed origin (errors included: a browser must be able to
read a 401) carry `Access-Control-Allow-Origin` and expose `Link`, the `X-Paging-*` headers,
`Location`, `WWW-Authenticate` and `Retry-After` to scripts. Origins are configured
(`TAMS_GATEWAY_CORS_ORIGINS`); none by default, so no CORS headers are sent at all.
"""

from __future__ import annotations

from aiohttp import web

from tams_gateway.errors import Handler, error_response
from tams_gateway.settings import GatewaySettings

EXPOSED_HEADERS = (
    "Link",
    "X-Paging-Limit",
    "X-Paging-Count",
    "X-Paging-Reverse-Order",
    "X-Paging-NextKey",
    "X-Paging-Timerange",
    "Location",
    "WWW-Authenticate",
    "Retry-After",
)


class Cors:
    def __init__(self, settings: GatewaySettings) -> None:
        self.origins = {
            o.strip().rstrip("/") for o in settings.cors_origins.split(",") if o.strip()
        }
        self.any_origin = "*" in self.origins
        self.allow_headers = settings.cors_allow_headers
        self.max_age_s = settings.cors_max_age_s
        self.credentials = settings.cors_allow_credentials

    def allowed(self, origin: str | None) -> bool:
        return origin is not None and (self.any_origin or origin in self.origins)

    def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if not self.allowed(origin):
            return
        assert origin is not None
        # The origin itself rather than `*`, so that credentialed requests work too.
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers.add("Vary", "Origin")
        response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        if self.credentials:
            response.headers["Access-Control-Allow-Credentials"] = "true"

    def preflight(self, request: web.Request, allowed_methods: set[str]) -> web.Response:
        methods = sorted(allowed_methods | {"OPTIONS"})
        response = web.Response(status=204, headers={"Allow": allow_header(allowed_methods)})
        if self.allowed(request.headers.get("Origin")):
            response.headers["Access-Control-Allow-Methods"] = ", ".join(methods)
            response.headers["Access-Control-Allow-Headers"] = self.allow_headers
            response.headers["Access-Control-Max-Age"] = str(self.max_age_s)
            self.add_headers(request, response)
        return response


CORS = web.AppKey("cors", Cors)


def allow_header(methods: set[str]) -> str:
    """`Allow` for a resource: its methods and OPTIONS, which this middleware answers."""
    return ", ".join(sorted(methods | {"OPTIONS"}))


def allowed_methods(request: web.Request) -> set[str] | None:
    """The methods of the path's resource; None for a path no route serves."""
    match = request.match_info
    exception = match.http_exception
    if isinstance(exception, web.HTTPMethodNotAllowed):
        return set(exception.allowed_methods)
    if exception is not None:
        return None
    resource = match.route.resource
    if resource is None:
        return None
    return {route.method for route in resource if route.method != "*"}


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    cors = request.app[CORS]
    if request.method == "OPTIONS":
        methods = allowed_methods(request)
        if methods is None:
            response: web.StreamResponse = error_response(
                404, "NotFound", f"no resource at {request.path}"
            )
            cors.add_headers(request, response)
            return response
        return cors.preflight(request, methods)
    response = await handler(request)
    if response.status == 405:
        # The same list as an OPTIONS answer (aiohttp's own leaves OPTIONS out). A handler's
        # own `Allow` wins: it knows the resource better than the route it was matched by.
        given = response.headers.get("Allow")
        methods = {m.strip() for m in given.split(",")} if given else allowed_methods(request)
        if methods is not None:
            response.headers["Allow"] = allow_header(methods)
    cors.add_headers(request, response)
    return response
