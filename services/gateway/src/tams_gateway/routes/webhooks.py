"""`/service/webhooks`: webhook registrations (delivery is the webhooks service's work).

Reads come from the store; writes are commands to the webhooks service keyed by webhook id.
A new webhook's id is chosen here, so its create command is keyed like every later command
for it. Responses never contain `api_key_value`.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from tams_gateway.commands import send
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.errors import bad_request, not_found
from tams_gateway.paging import page_limit, paging_headers
from tams_gateway.queries import UUID_RE, tag_filter
from tams_gateway.requests import json_body, query_bool
from tams_gateway.webhook_bodies import parse_webhook
from tams_store import Page
from tams_store.port import WebhookQuery

routes = web.RouteTableDef()


def _webhook_id(request: web.Request) -> str:
    webhook_id = request.match_info["webhook_id"]
    if not UUID_RE.match(webhook_id):
        # The spec answers an invalid id in the path with 404.
        raise not_found(f"webhook id {webhook_id!r} is not a UUID")
    return webhook_id


@routes.get("/service/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    reverse = bool(query_bool(request, "reverse_order", False))
    query = WebhookQuery(
        tags=tag_filter(request),
        reverse_order=reverse,
        page=request.query.get("page"),
        limit=page_limit(request, gw.settings),
    )
    page: Page = await gw.read_page(lambda tx: tx.list_webhooks(query))
    headers = paging_headers(
        request,
        gw.settings,
        limit=page.limit,
        count=len(page.items),
        next_key=page.next_key,
        reverse_order=reverse,
    )
    return web.json_response(page.items, headers=headers)


@routes.post("/service/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    body = parse_webhook(await json_body(request), put=False, policy=gw.egress, secrets=gw.secrets)
    webhook_id = str(uuid.uuid4())
    return await send(
        request,
        gw.topics.webhooks_commands,
        "webhooks.create",
        webhook_id,
        body.payload(webhook_id),
    )


@routes.get("/service/webhooks/{webhook_id}")
async def get_webhook(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    webhook_id = _webhook_id(request)
    record = await gw.store.read(lambda tx: tx.get_webhook(webhook_id))
    if record is None:
        raise not_found(f"webhook {webhook_id} does not exist")
    return web.json_response(record.view())


@routes.put("/service/webhooks/{webhook_id}")
async def put_webhook(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    webhook_id = _webhook_id(request)
    raw = await json_body(request)
    body = parse_webhook(raw, put=True, policy=gw.egress, secrets=gw.secrets)
    if raw.get("id") != webhook_id:
        raise bad_request(f"body id {raw.get('id')!r} does not match the webhook id in the path")
    return await send(
        request,
        gw.topics.webhooks_commands,
        "webhooks.replace",
        webhook_id,
        body.payload(webhook_id),
    )


@routes.delete("/service/webhooks/{webhook_id}")
async def delete_webhook(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    webhook_id = _webhook_id(request)
    return await send(
        request,
        gw.topics.webhooks_commands,
        "webhooks.delete",
        webhook_id,
        {"webhook_id": webhook_id},
    )
