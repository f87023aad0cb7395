"""Reading request bodies and query parameters, with 400s that name the problem."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic_core import from_json

from tams_gateway.context import GATEWAY
from tams_gateway.errors import ApiError, bad_request
from tams_runtime.web import query_bool, query_format, query_int, query_timerange

__all__ = [
    "json_body",
    "model_body",
    "query_bool",
    "query_format",
    "query_int",
    "query_timerange",
]

M = TypeVar("M", bound=BaseModel)


async def json_body(request: web.Request, *, if_empty: Any = None) -> Any:
    """The request's JSON body; an empty body is a 400 unless the operation's body is
    optional (`if_empty`, what an empty body stands for)."""
    timeout = request.app[GATEWAY].settings.body_timeout_s
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except TimeoutError as exc:
        raise ApiError(
            408, "RequestTimeout", f"the body did not arrive within {timeout:g} s"
        ) from exc
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
