"""Every error leaves the gateway as a TAMS error object with the right status.

Handlers raise `ApiError` (or let a known exception escape); the middleware turns it into
JSON `{"type", "summary", "time"}`. Nothing escapes as an HTML page or as a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from pydantic import ValidationError

from tams_runtime.bus import BusUnavailable, CommandTimeout
from tams_schema.envelopes import ErrorBody
from tams_schema.timerange import TimeRangeError
from tams_store import StoreUnavailable

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        type_: str,
        summary: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(summary)
        self.status = status
        self.type = type_
        self.summary = summary
        # A list, not a dict: a 401 carries one `WWW-Authenticate` header per scheme.
        self.headers = list(headers)


def bad_request(summary: str, type_: str = "BadRequest") -> ApiError:
    return ApiError(400, type_, summary)


def not_found(summary: str) -> ApiError:
    return ApiError(404, "NotFound", summary)


def forbidden(summary: str) -> ApiError:
    return ApiError(403, "Forbidden", summary)


def error_response(status: int, type_: str, summary: str) -> web.Response:
    body = ErrorBody(type=type_, summary=summary).model_dump(mode="json", exclude_none=True)
    return web.json_response(body, status=status)


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.type, exc.summary)
        for name, value in exc.headers:
            response.headers.add(name, value)
        return response
    except TimeRangeError as exc:
        return error_response(400, "BadRequest", str(exc))
    except ValidationError as exc:
        return error_response(400, "BadRequest", describe_validation_error(exc))
    except CommandTimeout as exc:
        return error_response(504, "Timeout", f"{exc}; the change may still be applied")
    except (BusUnavailable, StoreUnavailable) as exc:
        return error_response(503, "ServiceUnavailable", str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        summary = exc.reason
        if exc.status == 404:
            summary = f"no resource at {request.path}"
        elif exc.status == 405:
            summary = f"method {request.method} is not allowed on {request.path}"
        elif exc.status == 413:
            summary = "request body is too large"
        response = error_response(exc.status, exc.reason.replace(" ", ""), summary)
        for name in ("Allow",):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return error_response(500, "InternalError", "the server failed to handle the request")
