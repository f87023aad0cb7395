"""HTTP API plumbing shared by the gateway and the services that answer HTTP queries.

Every 4xx/5xx body is the TAMS error object `{"type", "summary", "time"}`; bad input is a 400
whose summary names the bad value. Query parameters are parsed here, once, at the edge.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from aiohttp import web

from tams_runtime.http import Handler
from tams_schema.envelopes import ErrorBody, with_message
from tams_schema.models.common import CONTENT_FORMATS, MIME_PATTERN, UUID_PATTERN
from tams_schema.timerange import TimeRange, TimeRangeError
from tams_store import StoreUnavailable
from tams_store.port import InvalidPageKey

log = logging.getLogger(__name__)


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


# What a 503 asks a client to wait before trying again: the outages behind one (a broker or
# a store that cannot be reached, a service restarting) last seconds, not milliseconds.
RETRY_AFTER_S = 5


def error_response(status: int, type_: str, summary: str) -> web.Response:
    body = with_message(ErrorBody(type=type_, summary=summary).as_json())
    response = web.json_response(body, status=status)
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def query_bool(request: web.Request, name: str, default: bool | None = None) -> bool | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise bad_request(f"query parameter {name}={raw!r} is not a boolean (true or false)")


# The largest integer a store column holds (SQLite and VAST integers are 64-bit).
MAX_QUERY_INT = 2**63 - 1


_UUID = re.compile(UUID_PATTERN)
_MIME_TYPE = re.compile(MIME_PATTERN)


def query_uuid(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is not None and not _UUID.fullmatch(value):
        raise bad_request(
            f"query parameter {name}={value!r} is not a UUID of the TAMS schemas (lowercase, "
            "RFC 4122 versions 1 to 5)"
        )
    return value


def query_mime_type(request: web.Request, name: str) -> str | None:
    """A MIME type (`codec`): anything else would silently match nothing."""
    value = request.query.get(name)
    if value is not None and not _MIME_TYPE.fullmatch(value):
        raise bad_request(f"query parameter {name} {value!r} is not a MIME type (type/subtype)")
    return value


def query_format(request: web.Request) -> str | None:
    """`format`: one of the TAMS content format URNs; anything else would silently match nothing."""
    value = request.query.get("format")
    if value is not None and value not in CONTENT_FORMATS:
        raise bad_request(f"format {value!r} is not a TAMS content format URN")
    return value


def query_int(
    request: web.Request, name: str, minimum: int | None = None, maximum: int = MAX_QUERY_INT
) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise bad_request(f"query parameter {name}={raw!r} is not an integer") from exc
    if minimum is not None and value < minimum:
        raise bad_request(f"query parameter {name}={raw!r} must be at least {minimum}")
    if value > maximum:
        raise bad_request(f"query parameter {name}={raw!r} must be at most {maximum}")
    return value


def query_timerange(request: web.Request, name: str = "timerange") -> TimeRange | None:
    raw = request.query.get(name)
    return None if raw is None else TimeRange.parse(raw)


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The TAMS error object for every failure: `ApiError`s, malformed timeranges and page
    keys (400), an unavailable store (503), aiohttp's own 404/405/413 and anything
    unexpected (500, logged). A service adds its own translations in an inner middleware
    that raises `ApiError`."""
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.type, exc.summary)
        for name, value in exc.headers:
            response.headers.add(name, value)
        return response
    except (TimeRangeError, InvalidPageKey) as exc:
        return error_response(400, "BadRequest", str(exc))
    except StoreUnavailable as exc:
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
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return error_response(500, "InternalError", "the server failed to handle the request")
