"""`/flow-delete-requests`: following asynchronous deletions (answered 202 elsewhere)."""

from __future__ import annotations

from typing import get_args

from aiohttp import web

from tams_gateway.access import Access
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.errors import not_found
from tams_gateway.paging import page_limit, page_response
from tams_gateway.queries import choice
from tams_gateway.requests import query_bool
from tams_store import Page, ReadTx
from tams_store.port import DeletionRequestRecord, DeletionRequestSort, Doc

routes = web.RouteTableDef()

SORTS: tuple[DeletionRequestSort, ...] = get_args(DeletionRequestSort)


@routes.get("/flow-delete-requests")
async def list_deletion_requests(request: web.Request) -> web.Response:
    """Newest first by `created` (default) or `expiry`, keyset paged, PH-full headers."""
    gw: Gateway = request.app[GATEWAY]
    sort_by = choice(request, "sort_by", SORTS, "created")
    reverse = bool(query_bool(request, "reverse_order", False))
    limit = page_limit(request, gw.settings)
    page_key = request.query.get("page")
    page: Page = await gw.read_page(
        lambda tx: tx.list_deletion_requests(
            sort_by=sort_by, reverse_order=reverse, page=page_key, limit=limit
        )
    )
    return page_response(request, gw.settings, page, reverse_order=reverse)


@routes.get("/flow-delete-requests/{request_id}")
async def get_deletion_request(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    request_id = request.match_info["request_id"]
    access = Access.of(request)

    def read(tx: ReadTx) -> tuple[DeletionRequestRecord | None, Doc | None]:
        record = tx.get_deletion_request(request_id)
        flow = tx.get_flow(record.flow_id) if record is not None and access.restricted else None
        return record, flow

    record, flow = await gw.store.read(read)
    missing = not_found(f"deletion request {request_id} does not exist (or has expired)")
    if record is None:
        raise missing
    if access.restricted:
        # AppNote 0016: delete permission on the request's flow. Once the flow is gone, its
        # classes are too: then only whoever made the request (and admins) may follow it.
        if flow is not None:
            access.require(flow.get("tags"), "delete", f"flow {record.flow_id}", missing)
        elif access.principal is None or record.doc.get("created_by") != access.principal.name:
            raise missing
    return web.json_response(record.doc)
