"""`/deleted-flows`: soft-deleted flows (docs/ext-soft-delete.md), a vendor extension.

Listed and read with the `read` scope (and, under fine-grained authorisation, read permission
on the deleted flow's own `auth_classes`); restored and purged with the `delete` scope and
delete permission on it, as deleting it needed. Restore and purge are catalog commands keyed
by the flow id, so they are ordered with the flow id's other commands.
"""

from __future__ import annotations

from aiohttp import web

from tams_gateway.access import Access
from tams_gateway.commands import send
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.errors import ApiError, not_found
from tams_gateway.paging import page_limit, paging_headers
from tams_gateway.queries import check_uuid, only_query
from tams_runtime import deletion
from tams_schema.auth import Permission
from tams_store import ReadTx
from tams_store.port import DeletedFlowRecord, Doc

routes = web.RouteTableDef()


def deleted_missing(flow_id: str) -> ApiError:
    return not_found(f"flow {flow_id} is not soft-deleted (unknown, restored or purged)")


# Under fine-grained authorisation, how many times one listing page may read the store to
# fill itself with deleted flows the caller may read.
MAX_STORE_READS = 10


@routes.get("/deleted-flows")
async def list_deleted_flows(request: web.Request) -> web.Response:
    """Soft-deleted flows, most recently deleted first; keyset paged. Under fine-grained
    authorisation the flows the caller may not read are skipped: a page reads on (in one
    transaction) until it holds `limit` readable ones, for up to `MAX_STORE_READS` reads,
    so a page is shorter than `limit` only at the end, or after that many unreadable ones
    (its `Link` then leads on)."""
    gw: Gateway = request.app[GATEWAY]
    limit = page_limit(request, gw.settings)
    access = Access.of(request)

    def readable_page(tx: ReadTx) -> tuple[list[Doc], str | None]:
        items: list[Doc] = []
        page_key = request.query.get("page")
        for _ in range(MAX_STORE_READS):
            records, page_key = tx.list_deleted_flows(page_key, limit - len(items))
            items += [r.view() for r in records if access.may(r.flow.get("tags"), "read")]
            if page_key is None or len(items) == limit:
                break
        return items, page_key

    items, next_key = await gw.read_page(readable_page)
    headers = paging_headers(
        request,
        gw.settings,
        limit=limit,
        count=len(items),
        next_key=next_key,
        reverse_order=None,
    )
    return web.json_response(items, headers=headers)


async def load_deleted(request: web.Request, need: Permission) -> DeletedFlowRecord:
    """The soft-deleted flow of the path, if the caller holds `need` on it (no permission at
    all: the same 404 as for an unknown one; some, but not this: 403)."""
    gw: Gateway = request.app[GATEWAY]
    flow_id = check_uuid(request.match_info["flow_id"], "flow id")
    record = await gw.store.read(lambda tx: tx.get_deleted_flow(flow_id))
    if record is None:
        raise deleted_missing(flow_id)
    Access.of(request).require(
        record.flow.get("tags"), need, f"deleted flow {flow_id}", deleted_missing(flow_id)
    )
    return record


@routes.get("/deleted-flows/{flow_id}")
async def get_deleted_flow(request: web.Request) -> web.Response:
    """`{flow, deleted, deleted_by, purge_after}` of one soft-deleted flow."""
    record = await load_deleted(request, "read")
    return web.json_response(record.view())


@routes.post("/deleted-flows/{flow_id}/restore")
async def restore_deleted_flow(request: web.Request) -> web.Response:
    """The flow back, with its segments and tags (and its source, if it went with it): 200
    with the flow; 404 if unknown, purged or being purged; 409 if its source has changed
    format meanwhile."""
    gw: Gateway = request.app[GATEWAY]
    only_query(request)
    record = await load_deleted(request, "delete")
    access = Access.of(request)
    if access.restricted:
        # Joining a source that exists (again) is creating a flow on it: write on the source.
        source_id = str(record.flow["source_id"])

        def source_of(tx: ReadTx) -> Doc | None:
            return tx.get_source(source_id)

        source = await gw.store.read(source_of)
        if source is not None:
            missing = not_found(f"source {source_id} does not exist")
            access.require(source.get("tags"), "write", f"source {source_id}", missing)
    flow_id = record.flow_id
    return await send(
        request, gw.topics.catalog_commands, deletion.RESTORE_COMMAND, flow_id, {"flow_id": flow_id}
    )


@routes.delete("/deleted-flows/{flow_id}")
async def purge_deleted_flow(request: web.Request) -> web.Response:
    """Purge now: 204 when done at once, 202 with a deletion request (`Location`) when its
    segments go in the background, as a flow deletion."""
    gw: Gateway = request.app[GATEWAY]
    record = await load_deleted(request, "delete")
    flow_id = record.flow_id
    return await send(
        request, gw.topics.catalog_commands, deletion.PURGE_COMMAND, flow_id, {"flow_id": flow_id}
    )
