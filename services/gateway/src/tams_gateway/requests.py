"""Reading request bodies and query parameters, with 400s that name the problem."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from tams_gateway.errors import bad_request
from tams_runtime.web import query_bool, query_int, query_timerange

__all__ = ["json_body", "model_body", "query_bool", "query_int", "query_timerange"]

M = TypeVar("M", bound=BaseModel)


async def json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise bad_request("request body is empty; a JSON body is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from exc


async def model_body(request: web.Request, model: type[M]) -> M:
    return model.model_validate(await json_body(request))
