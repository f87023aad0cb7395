"""Reading request bodies and query parameters, with 400s that name the problem."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from pydantic import BaseModel
from pydantic_core import from_json

from tams_gateway.context import GATEWAY
from tams_gateway.errors import ApiError, bad_request
from tams_gateway.expect import send_continue
from tams_runtime.http import http_fault
from tams_runtime.web import query_bool, query_format, query_int, query_mime_type, query_timerange

__all__ = [
    "json_body",
    "model_body",
    "query_bool",
    "query_format",
    "query_int",
    "query_mime_type",
    "query_timerange",
]

M = TypeVar("M", bound=BaseModel)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "RequestEntityTooLarge",
        f"the request body is larger than {limit} bytes (TAMS_GATEWAY_MAX_BODY_BYTES; "
        "decoded, when it has a Content-Encoding)",
    )


async def json_body(request: web.Request, *, if_empty: Any = None) -> Any:
    """The request's JSON body; an empty body is a 400 unless the operation's body is
    optional (`if_empty`, what an empty body stands for)."""
    timeout = request.app[GATEWAY].settings.body_timeout_s
    limit = request.app[GATEWAY].settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        # Refused from its header, before the client is told to send it.
        raise _too_large(limit)
    await send_continue(request)
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        # Read past the limit (a chunked body, or one that decodes to more).
        raise _too_large(limit) from exc
    except TimeoutError as exc:
        raise ApiError(
            408, "RequestTimeout", f"the body did not arrive within {timeout:g} s"
        ) from exc
    except web.RequestPayloadError as exc:
        # A body the HTTP layer could not decode: a `Content-Encoding` it does not match, a
        # broken chunk. The cause names the fault on its first line.
        cause = exc.__cause__
        reason = http_fault(cause) if isinstance(cause, BadHttpMessage) else "a broken payload"
        raise bad_request(f"request body could not be decoded: {reason}") from exc
    except ConnectionResetError as exc:
        # The client went away mid-body: nobody reads this answer, but it is the client's
        # doing, not a server error in the logs and metrics.
        raise bad_request("the connection closed before the request body ended") from exc
    if not raw:
        if if_empty is not None:
            return if_empty
        raise bad_request("request body is empty; a JSON body is required")
    try:
        # pydantic-core's parser: the same values as `json.loads`, several times faster on a
        # bulk registration; it also refuses lone surrogates, which no store could keep.
        return from_json(raw)
    except ValueError as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from exc


async def model_body(request: web.Request, model: type[M]) -> M:
    return model.model_validate(await json_body(request))
