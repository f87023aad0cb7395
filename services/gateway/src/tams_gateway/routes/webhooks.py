"""`/service/webhooks`: webhook registrations (delivery is the webhooks service's work).

Reads come from the store; writes are commands to the webhooks service keyed by webhook id.
A new webhook's id is chosen here, so its create command is keyed like every later command
for it. Responses never contain `api_key_value`.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from tams_gateway.access import Access, check_auth_classes_value
from tams_gateway.auth.gate import principal_of
from tams_gateway.commands import send
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.errors import ApiError, bad_request, not_found
from tams_gateway.paging import page_limit, page_response
from tams_gateway.queries import path_uuid, tag_filter
from tams_gateway.requests import json_body, query_bool
from tams_gateway.webhook_bodies import WebhookBody, parse_webhook
from tams_schema.auth import Permission
from tams_store import Page, ReadTx
from tams_store.port import Doc, WebhookQuery, WebhookRecord

routes = web.RouteTableDef()


def _webhook_id(request: web.Request) -> str:
    return path_uuid(request.match_info["webhook_id"], "webhook id")


@routes.get("/service/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    reverse = bool(query_bool(request, "reverse_order", False))
    query = WebhookQuery(
        tags=Access.of(request).listing(tag_filter(request)),
        reverse_order=reverse,
        page=request.query.get("page"),
        limit=page_limit(request, gw.settings),
    )
    page: Page = await gw.read_page(lambda tx: tx.list_webhooks(query))
    return page_response(request, gw.settings, page, reverse_order=reverse)


def webhook_missing(webhook_id: str) -> ApiError:
    return not_found(f"webhook {webhook_id} does not exist")


async def authorise_webhook(request: web.Request, webhook_id: str, need: Permission) -> Doc | None:
    """`need` on the webhook (by its own auth_classes); returns its tags when it was read for
    the check. A missing webhook is left to the webhooks service's 404."""
    gw: Gateway = request.app[GATEWAY]
    access = Access.of(request)
    if not access.restricted:
        return None
    record: WebhookRecord | None = await gw.store.read(lambda tx: tx.get_webhook(webhook_id))
    if record is None:
        return None
    tags: Doc = record.doc.get("tags") or {}
    access.require(tags, need, f"webhook {webhook_id}", webhook_missing(webhook_id))
    return tags


async def authorise_filters(request: web.Request, body: WebhookBody) -> None:
    """AppNote 0016: every flow and source a webhook filters on must be readable. An id that
    does not exist is refused like one that may not be read, so ids cannot be probed."""
    gw: Gateway = request.app[GATEWAY]
    access = Access.of(request)
    if not access.restricted:
        return
    doc = body.doc
    flow_ids = sorted({*doc.get("flow_ids", []), *doc.get("flow_collected_by_ids", [])})
    source_ids = sorted({*doc.get("source_ids", []), *doc.get("source_collected_by_ids", [])})

    def unreadable(tx: ReadTx) -> str | None:
        for kind, ids, get in (
            ("flow", flow_ids, tx.get_flow),
            ("source", source_ids, tx.get_source),
        ):
            for some_id in ids:
                found = get(some_id)
                if found is None or not access.may(found.get("tags"), "read"):
                    return f"{kind} {some_id}"
        return None

    refused = await gw.store.read(unreadable)
    if refused is not None:
        raise bad_request(
            f"the webhook filters on {refused}, which does not exist or which you may not read"
        )


def owner_of(request: web.Request) -> dict[str, Any] | None:
    """Who registered (or last replaced) the webhook: deliveries are filtered by what they
    may read (the webhooks service evaluates the policy per event)."""
    principal = principal_of(request)
    return principal.model_dump(mode="json") if principal is not None else None


@routes.post("/service/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    body = parse_webhook(await json_body(request), put=False, policy=gw.egress, secrets=gw.secrets)
    check_auth_classes_value(body.doc.get("tags"))
    webhook_id = str(uuid.uuid4())
    Access.of(request).check_classes_change("the webhook", None, body.doc.get("tags"), exists=False)
    await authorise_filters(request, body)
    return await send(
        request,
        gw.topics.webhooks_commands,
        body.command_name("webhooks.create"),
        webhook_id,
        {**body.payload(webhook_id), "owner": owner_of(request)},
    )


@routes.get("/service/webhooks/{webhook_id}")
async def get_webhook(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    webhook_id = _webhook_id(request)
    record = await gw.store.read(lambda tx: tx.get_webhook(webhook_id))
    if record is None:
        raise webhook_missing(webhook_id)
    Access.of(request).require(
        record.doc.get("tags"), "read", f"webhook {webhook_id}", webhook_missing(webhook_id)
    )
    return web.json_response(record.view())


@routes.put("/service/webhooks/{webhook_id}")
async def put_webhook(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    webhook_id = _webhook_id(request)
    raw = await json_body(request)
    body = parse_webhook(raw, put=True, policy=gw.egress, secrets=gw.secrets)
    if raw.get("id") != webhook_id:
        raise bad_request(f"body id {raw.get('id')!r} does not match the webhook id in the path")
    check_auth_classes_value(body.doc.get("tags"))
    current_tags = await authorise_webhook(request, webhook_id, "write")
    if current_tags is not None:
        Access.of(request).check_classes_change(
            f"webhook {webhook_id}", current_tags, body.doc.get("tags"), exists=True
        )
    await authorise_filters(request, body)
    return await send(
        request,
        gw.topics.webhooks_commands,
        body.command_name("webhooks.replace"),
        webhook_id,
        {**body.payload(webhook_id), "owner": owner_of(request)},
    )


@routes.delete("/service/webhooks/{webhook_id}")
async def delete_webhook(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    webhook_id = _webhook_id(request)
    await authorise_webhook(request, webhook_id, "delete")
    return await send(
        request,
        gw.topics.webhooks_commands,
        "webhooks.delete",
        webhook_id,
        {"webhook_id": webhook_id},
    )
