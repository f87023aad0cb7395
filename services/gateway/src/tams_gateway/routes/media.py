"""Media routes: storage allocation (segments, objects and deletion follow)."""

from __future__ import annotations

from aiohttp import web

from tams_gateway.commands import send
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.requests import json_body
from tams_schema.models import StorageRequest, dump

routes = web.RouteTableDef()


@routes.post("/flows/{flow_id}/storage")
async def allocate_storage(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    flow_id = request.match_info["flow_id"]
    body = await json_body(request)
    storage = dump(StorageRequest.model_validate(body))
    return await send(
        request,
        gw.topics.segments_commands,
        "storage.allocate",
        flow_id,
        {"flow_id": flow_id, **storage},
    )
