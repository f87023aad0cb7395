"""`Expect: 100-continue`, answered only when the body is wanted.

aiohttp answers `100 Continue` as soon as a route matches, before any middleware runs, so a
client would send its body to be refused by the credentials check or the size limit.
Here the interim answer waits until a handler reads the body (`json_body`): a request
refused before then gets its final answer instead, and never sends the body (RFC 9110
§10.1.1). Its connection then closes, as the body the client may still send cannot be
told apart from a next request.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_routedef import AbstractRouteDef, RouteDef

from tams_runtime.web import error_response

CONTINUE_PENDING = web.RequestKey("continue_pending", bool)


async def defer_continue(request: web.Request) -> web.StreamResponse | None:
    """The routes' expect handler: note the promise, or refuse an expectation we cannot
    meet (417, as aiohttp's own handler does, but with a JSON body)."""
    expect = request.headers.get("Expect", "")
    if expect.lower() != "100-continue":
        response = error_response(
            417, "ExpectationFailed", f"unknown expectation {expect!r}; only 100-continue"
        )
        response.force_close()
        return response
    if request.version >= (1, 1):
        request[CONTINUE_PENDING] = True
    return None


async def send_continue(request: web.Request) -> None:
    """Before the body is read: the `100 Continue` the client waits for, if it waits."""
    if request.get(CONTINUE_PENDING):
        request[CONTINUE_PENDING] = False
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        # The interim answer is not part of the response's size (as aiohttp does).
        request.writer.output_size = 0


async def close_unanswered(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: a final answer to a request whose body was never asked for
    closes the connection."""
    if request.get(CONTINUE_PENDING):
        response.force_close()
        # The headers are prepared by now, but not yet written.
        response.headers["Connection"] = "close"


def with_deferred_continue(table: web.RouteTableDef) -> list[AbstractRouteDef]:
    """The table's routes, each with `defer_continue` as its expect handler."""
    return [
        RouteDef(
            route.method,
            route.path,
            route.handler,
            {**route.kwargs, "expect_handler": defer_continue},
        )
        if isinstance(route, RouteDef)
        else route
        for route in table
    ]
