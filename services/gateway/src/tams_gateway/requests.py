"""Reading request bodies and query parameters, with 400s that name the problem."""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from tams_gateway.context import GATEWAY
from tams_gateway.errors import ApiError, bad_request
from tams_schema.timerange import TimeRange

M = TypeVar("M", bound=BaseModel)


async def json_body(request: web.Request) -> Any:
    timeout = request.app[GATEWAY].settings.body_timeout_s
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except TimeoutError as exc:
        raise ApiError(
            408, "RequestTimeout", f"the body did not arrive within {timeout:g} s"
        ) from exc
    if not raw:
        raise bad_request("request body is empty; a JSON body is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from exc


async def model_body(request: web.Request, model: type[M]) -> M:
    return model.model_validate(await json_body(request))


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
