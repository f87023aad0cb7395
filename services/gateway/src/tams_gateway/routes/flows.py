"""`/flows`, `/flows/{id}` and a flow's property endpoints."""

from __future__ import annotations

from typing import Any, get_args

from aiohttp import web

from tams_gateway.access import Access, check_auth_classes_value
from tams_gateway.commands import send
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.errors import ApiError, bad_request, not_found
from tams_gateway.paging import page_limit, page_response
from tams_gateway.queries import (
    choice,
    only_query,
    optional_uuid,
    path_uuid,
    tag_filter,
    uuid_list,
)
from tams_gateway.requests import (
    json_body,
    query_bool,
    query_format,
    query_int,
    query_mime_type,
    query_timerange,
)
from tams_gateway.validation import validate_collection, validate_flow_put
from tams_gateway.values import bit_rate, json_bool, json_string, tag_value
from tams_schema.auth import AUTH_CLASSES_TAG, Permission
from tams_schema.models.flows import FlowStatus
from tams_schema.timerange import TimeRange
from tams_store import FlowQuery, Page
from tams_store.port import Doc, FlowSort

routes = web.RouteTableDef()

# The store's and the schemas' own sets, so that neither copy can drift.
FLOW_SORTS: tuple[FlowSort, ...] = get_args(FlowSort)
FLOW_STATUSES: tuple[FlowStatus, ...] = get_args(FlowStatus)


@routes.get("/flows")
async def list_flows(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    reverse = bool(query_bool(request, "reverse_order", False))
    status = request.query.get("status")
    if status is not None and status not in FLOW_STATUSES:
        raise bad_request(f"status {status!r} must be one of {', '.join(FLOW_STATUSES)}")
    query = FlowQuery(
        source_id=optional_uuid(request, "source_id"),
        format=query_format(request),
        codec=query_mime_type(request, "codec"),
        label=request.query.get("label"),
        profile_id=optional_uuid(request, "profile_id"),
        status=status,
        frame_width=query_int(request, "frame_width", minimum=0),
        frame_height=query_int(request, "frame_height", minimum=0),
        init_segments=query_bool(request, "init_segments"),
        tags=Access.of(request).listing(tag_filter(request)),
        collected_by_ids=uuid_list(request, "collected_by_ids"),
        timerange=query_timerange(request),
        sort_by=choice(request, "sort_by", FLOW_SORTS, "created"),
        reverse_order=reverse,
        page=request.query.get("page"),
        limit=page_limit(request, gw.settings),
    )
    access = Access.of(request)
    page: Page = await gw.read_page(
        lambda tx: access.collected_page(query, tx.list_flows, tx.get_flow)
    )
    return page_response(request, gw.settings, page, reverse_order=reverse)


def flow_missing(flow_id: str) -> ApiError:
    return not_found(f"flow {flow_id} does not exist")


async def load_flow(request: web.Request) -> Doc:
    """The flow of the path, if the caller may read it (else the same 404 as a missing one)."""
    gw: Gateway = request.app[GATEWAY]
    flow_id = request.match_info["flow_id"]
    flow = await gw.store.read(lambda tx: tx.get_flow(flow_id))
    if flow is None:
        raise flow_missing(flow_id)
    Access.of(request).require(flow.get("tags"), "read", f"flow {flow_id}", flow_missing(flow_id))
    return flow


async def authorise_flow(request: web.Request, need: Permission, flow_id: str) -> Doc | None:
    """Before a write: the caller must hold `need` on the flow. Returns the flow when it was
    read for the check (only under fine-grained authorisation); a missing flow is left to
    the owning service, which answers 404 as it always does."""
    gw: Gateway = request.app[GATEWAY]
    access = Access.of(request)
    if not access.restricted:
        return None
    flow = await gw.store.read(lambda tx: tx.get_flow(flow_id))
    if flow is not None:
        access.require(flow.get("tags"), need, f"flow {flow_id}", flow_missing(flow_id))
    return flow


@routes.get("/flows/{flow_id}")
async def get_flow(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    flow_id = request.match_info["flow_id"]
    include = bool(query_bool(request, "include_timerange", False))
    within = query_timerange(request)

    access = Access.of(request)

    def read(tx: Any) -> tuple[Doc | None, TimeRange | None]:
        flow = tx.get_flow(flow_id)
        if flow is not None:
            access.hide_collectors([flow], tx.get_flow)
        if flow is None or not include:
            return flow, None
        return flow, tx.flow_timerange(flow_id, within)

    flow, timerange = await gw.store.read(read)
    if flow is None:
        raise flow_missing(flow_id)
    access.require(flow.get("tags"), "read", f"flow {flow_id}", flow_missing(flow_id))
    if timerange is not None:
        flow["timerange"] = str(timerange)
    return web.json_response(flow)


@routes.put("/flows/{flow_id}")
async def put_flow(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    flow_id = path_uuid(request.match_info["flow_id"], "flow id")
    flow = validate_flow_put(await json_body(request))
    if flow["id"] != flow_id:
        raise bad_request(f"body id {flow['id']} does not match the flow id {flow_id} in the path")
    check_auth_classes_value(flow.get("tags"))
    move = await authorise_flow_put(request, flow)
    await authorise_members(request, flow.get("flow_collection") or [])
    payload = {"flow": flow, **move}
    return await send(request, gw.topics.catalog_commands, "flows.put", flow_id, payload)


async def authorise_members(request: web.Request, members: list[Doc]) -> None:
    """AppNote 0016: a collection may name only flows the caller may read. Any other is
    refused as if it did not exist, as the catalog refuses a missing one: collecting it would
    disclose that it exists, and change its `collected_by` for those who may read it."""
    gw: Gateway = request.app[GATEWAY]
    access = Access.of(request)
    ids = [m["id"] for m in members if isinstance(m, dict) and isinstance(m.get("id"), str)]
    if not access.restricted or not ids:
        return

    def unreadable(tx: Any) -> list[str]:
        found = {i: tx.get_flow(i) for i in ids}
        return [
            i
            for i, member in found.items()
            if member is not None and not access.may(member.get("tags"), "read")
        ]

    hidden = await gw.store.read(unreadable)
    if hidden:
        raise bad_request(f"flow_collection member {hidden[0]} does not exist")


async def authorise_flow_put(request: web.Request, flow: Doc) -> Doc:
    """AppNote 0016: replacing needs write on the flow; a new flow on an existing source needs
    write on the source (so does moving a flow to another source); a brand-new flow and
    source need only the write scope. Classes given or changed must be the caller's to give.

    Moving a flow off a source of which it is the last flow deletes that source
    (docs/decisions.md), so that needs what deleting needs: the delete scope, and delete
    permission on the source. Returns what the command carries for the catalog, which decides
    when it applies the move (the source's other flows may go meanwhile, so a 403 comes from
    there): for a caller who may not delete every source, `deletable_source`, the one it may
    delete (None: none)."""
    gw: Gateway = request.app[GATEWAY]
    access = Access.of(request)
    principal = access.principal
    may_delete = principal is None or principal.has_scope("delete")
    if not access.restricted and may_delete:
        return {}
    flow_id, source_id = flow["id"], flow.get("source_id")

    def read(tx: Any) -> tuple[Doc | None, Doc | None, Doc | None]:
        existing = tx.get_flow(flow_id)
        moving = existing is not None and existing.get("source_id") != source_id
        left = tx.get_source(existing["source_id"]) if moving else None
        return existing, tx.get_source(source_id) if source_id else None, left

    existing, source, left = await gw.store.read(read)
    if access.restricted:
        if existing is not None:
            missing = flow_missing(flow_id)
            access.require(existing.get("tags"), "write", f"flow {flow_id}", missing)
        if source is not None and (existing is None or existing.get("source_id") != source_id):
            missing = not_found(f"source {source_id} does not exist")
            access.require(source.get("tags"), "write", f"source {source_id}", missing)
        access.check_classes_change(
            f"flow {flow_id}",
            existing.get("tags") if existing else None,
            flow.get("tags"),
            exists=existing is not None,
        )
    deletable = left is not None and may_delete and access.may(left.get("tags"), "delete")
    return {"deletable_source": left["id"] if left is not None and deletable else None}


@routes.delete("/flows/{flow_id}")
async def delete_flow(request: web.Request) -> web.Response:
    only_query(request)
    return await _command(request, "flows.delete", need="delete")


async def _command(
    request: web.Request, command: str, *, need: Permission = "write", **payload: object
) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    flow_id = request.match_info["flow_id"]
    await authorise_flow(request, need, flow_id)
    return await send(
        request, gw.topics.catalog_commands, command, flow_id, {"flow_id": flow_id, **payload}
    )


@routes.get("/flows/{flow_id}/tags")
async def get_flow_tags(request: web.Request) -> web.Response:
    return web.json_response((await load_flow(request)).get("tags", {}))


@routes.get("/flows/{flow_id}/tags/{name}")
async def get_flow_tag(request: web.Request) -> web.Response:
    flow = await load_flow(request)
    name = request.match_info["name"]
    tags = flow.get("tags", {})
    if name not in tags:
        raise not_found(f"flow {flow['id']} has no tag {name!r}")
    return web.json_response(tags[name])


@routes.put("/flows/{flow_id}/tags/{name}")
async def put_flow_tag(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    value = tag_value(await json_body(request))
    if name == AUTH_CLASSES_TAG:
        check_auth_classes_value({name: value})
        await _authorise_classes(request, value)
    return await _command(request, "flows.tag.set", name=name, value=value)


@routes.delete("/flows/{flow_id}/tags/{name}")
async def delete_flow_tag(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name == AUTH_CLASSES_TAG:
        await _authorise_classes(request, None)
    return await _command(request, "flows.tag.delete", name=name)


async def _authorise_classes(request: web.Request, value: str | list[str] | None) -> None:
    flow_id = request.match_info["flow_id"]
    flow = await authorise_flow(request, "write", flow_id)
    if flow is not None:
        new_tags = {AUTH_CLASSES_TAG: value} if value is not None else {}
        Access.of(request).check_classes_change(
            f"flow {flow_id}", flow.get("tags"), new_tags, exists=True
        )


def _parse_property(prop: str, body: Any) -> Any:
    if prop in ("label", "description"):
        return json_string(body, prop)
    if prop == "read_only":
        return json_bool(body, prop)
    if prop in ("max_bit_rate", "avg_bit_rate"):
        return bit_rate(body, prop)
    if prop == "flow_collection":
        return validate_collection(body)
    raise AssertionError(prop)


def _property_routes(prop: str, deletable: bool) -> None:
    async def get(request: web.Request) -> web.Response:
        flow = await load_flow(request)
        if prop not in flow:
            if prop == "read_only":
                return web.json_response(False)
            raise not_found(f"flow {flow['id']} has no {prop}")
        return web.json_response(flow[prop])

    async def put(request: web.Request) -> web.Response:
        value = _parse_property(prop, await json_body(request))
        if prop == "flow_collection":
            await authorise_members(request, value)
        return await _command(request, "flows.property.set", name=prop, value=value)

    async def delete(request: web.Request) -> web.Response:
        return await _command(request, "flows.property.delete", name=prop)

    path = f"/flows/{{flow_id}}/{prop}"
    routes.get(path)(get)
    routes.put(path)(put)
    if deletable:
        routes.delete(path)(delete)


for _prop, _deletable in (
    ("label", True),
    ("description", True),
    ("read_only", False),
    ("flow_collection", True),
    ("max_bit_rate", True),
    ("avg_bit_rate", True),
):
    _property_routes(_prop, _deletable)
