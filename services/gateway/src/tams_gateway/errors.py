"""Every error leaves the gateway as a TAMS error object with the right status.

Handlers raise `ApiError` (or let a known exception escape); `error_middleware` turns the
gateway's own exceptions (validation, command timeouts, an unavailable broker) into
`ApiError`s and `tams_runtime.web.api_errors` turns everything into JSON
`{"type", "summary", "time"}`. Nothing escapes as an HTML page or as a bare 500.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from tams_runtime.bus import BusUnavailable, CommandTimeout, CommandTooLarge
from tams_runtime.http import Handler
from tams_runtime.web import ApiError, bad_request, error_response, forbidden, not_found
from tams_schema.models.common import CONTENT_FORMATS

__all__ = [
    "ApiError",
    "Handler",
    "bad_request",
    "describe_validation_error",
    "error_middleware",
    "error_response",
    "forbidden",
    "not_found",
]


def describe_validation_error(exc: ValidationError, *, drop_index: bool = False) -> str:
    """What is wrong and where (`0.timerange: ...`), the first five errors.
    `drop_index`: the errors of a one-item list validated for an object sent alone."""
    parts = []
    for err in exc.errors()[:5]:
        loc = err["loc"][1:] if drop_index else err["loc"]
        # The flow union, tagged by `format`, puts the format in the location: it is a value
        # the client sent, not a place in the body.
        path = [str(p) for p in loc if p not in CONTENT_FORMATS]
        message = err["msg"]
        if err["type"] in ("union_tag_not_found", "union_tag_invalid"):
            ctx = err.get("ctx", {})
            path.append(str(ctx.get("discriminator", "")).strip("'"))
            message = (
                f"{ctx['tag']!r} is not one of {ctx['expected_tags']}"
                if err["type"] == "union_tag_invalid"
                else "missing, or not a string"
            )
        parts.append(f"{'.'.join(path) or 'body'}: {message}")
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The gateway's own failures as `ApiError`s; `api_errors` (outside it) answers them."""
    try:
        return await handler(request)
    except ValidationError as exc:
        raise bad_request(describe_validation_error(exc)) from exc
    except CommandTimeout as exc:
        raise ApiError(504, "Timeout", f"{exc}; the change may still be applied") from exc
    except BusUnavailable as exc:
        raise ApiError(503, "ServiceUnavailable", str(exc)) from exc
    except CommandTooLarge as exc:
        raise ApiError(413, "RequestEntityTooLarge", str(exc)) from exc
