"""`/`, `/service` and `/service/storage-backends`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tams_gateway.access import Access
from tams_gateway.commands import send
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.errors import bad_request
from tams_gateway.paging import page_limit, paging_headers
from tams_gateway.queries import tag_filter
from tams_gateway.requests import json_body, query_bool
from tams_runtime.media import tags_match

routes = web.RouteTableDef()

ROOT_PATHS = ["service", "flows", "sources", "flow-delete-requests"]


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    return web.json_response(ROOT_PATHS)


def seconds(value: int) -> str:
    return f"{value}:0"


@routes.get("/service")
async def get_service(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    settings = gw.settings
    info = await gw.store.read(lambda tx: tx.get_service_info())
    body: dict[str, Any] = {
        "type": settings.service_type,
        "api_version": "8.2",
        "min_object_timeout": seconds(gw.media.min_object_timeout_s),
        "min_presigned_url_timeout": seconds(gw.s3.presigned_url_timeout_s),
        "event_stream_mechanisms": gw.event_stream_mechanisms(),
    }
    if settings.service_version:
        body["service_version"] = settings.service_version
    for key in ("name", "description"):
        if key in info:
            body[key] = info[key]
    return web.json_response(body)


@routes.post("/service")
async def post_service(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object with optional name and description")
    # service-post.json allows other members; only these two are the service's to keep.
    update = {key: body[key] for key in ("name", "description") if key in body}
    for key, value in update.items():
        if not isinstance(value, str):
            raise bad_request(f"{key} must be a string")
    return await send(request, gw.topics.catalog_commands, "service.update", "service", update)


@routes.get("/service/storage-backends")
async def storage_backends(request: web.Request) -> web.Response:
    """Deploy-time configuration: sorted by label (unlabelled last, by id), filtered by tags,
    paged by position (the list is short and fixed while the process runs)."""
    gw: Gateway = request.app[GATEWAY]
    reverse = bool(query_bool(request, "reverse_order", False))
    limit = page_limit(request, gw.settings)
    tags = tag_filter(request)
    access = Access.of(request)
    # ADR 0055: only the backends the caller has some permission on.
    visible = [b.descriptor() for b in gw.backends.all if access.backend_permissions(b)]
    backends = sorted(
        (b for b in visible if tags_match(b.get("tags") or {}, tags)),
        key=lambda b: (b.get("label") is None, b.get("label") or "", b["id"]),
        reverse=reverse,
    )
    raw_page = request.query.get("page")
    start = 0
    if raw_page is not None:
        if not raw_page.isdigit():
            raise bad_request(f"invalid page key {raw_page!r}")
        start = int(raw_page)
    items = backends[start : start + limit]
    more = start + limit < len(backends)
    headers = paging_headers(
        request,
        gw.settings,
        limit=limit,
        count=len(items),
        next_key=str(start + limit) if more else None,
        reverse_order=reverse,
    )
    return web.json_response(items, headers=headers)
