"""Media routes: storage allocation, segments (register, list, delete), objects and their
instances."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from tams_gateway.access import Access
from tams_gateway.commands import send
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.errors import (
    ApiError,
    bad_request,
    describe_validation_error,
    forbidden,
    not_found,
)
from tams_gateway.paging import page_limit, paging_headers
from tams_gateway.queries import check_uuid, only_query, path_uuid, tag_filter
from tams_gateway.requests import json_body, query_bool, query_timerange
from tams_gateway.routes.flows import authorise_flow
from tams_gateway.urls import url_filter
from tams_gateway.values import tag_value
from tams_runtime.deletion import released_classes
from tams_runtime.media import MAX_SEGMENT_TAGS_BYTES, objects_of, segment_view, tags_size
from tams_schema.auth import AUTH_CLASSES_TAG, PERMISSIONS, Permission
from tams_schema.models import (
    ControlledInstanceRequest,
    FlowSegmentPost,
    StorageRequest,
    UncontrolledInstanceRequest,
    dump,
)
from tams_schema.timerange import TimeRange
from tams_store import ReadTx, TagFilter
from tams_store.port import ObjectRecord, SegmentPage

_SEGMENTS = TypeAdapter(list[FlowSegmentPost])
MAX_SEGMENTS_PER_POST = 1000
# The most object ids one allocation takes (the segments service's `storage.MAX_LIMIT`).
MAX_OBJECT_IDS = 1000

routes = web.RouteTableDef()


@routes.post("/flows/{flow_id}/storage")
async def allocate_storage(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    flow_id = request.match_info["flow_id"]
    # The spec's request body is optional here, and every field in it: none is `{}`.
    body = await json_body(request, if_empty={})
    storage = dump(StorageRequest.model_validate(body))
    await authorise_flow(request, "write", flow_id)
    storage_id = storage.get("storage_id")
    backend = gw.backends.get(storage_id) if storage_id else gw.backends.default
    if backend is not None:
        # ADR 0055: allocating in a backend needs write on it as well as on the flow.
        Access.of(request).require_backend(backend, "write")
    if storage.get("object_ids"):
        await refuse_taken_ids(request, storage["object_ids"])
    return await send(
        request,
        gw.topics.segments_commands,
        "storage.allocate",
        flow_id,
        {"flow_id": flow_id, **storage},
    )


@routes.post("/flows/{flow_id}/segments")
async def post_segments(request: web.Request) -> web.Response:
    """One segment (201 or 400) or an array (201, or 200 with `failed_segments`)."""
    gw: Gateway = request.app[GATEWAY]
    flow_id = request.match_info["flow_id"]
    body = await json_body(request)
    single = isinstance(body, dict)
    items = [body] if single else body
    if not isinstance(items, list):
        raise bad_request("the body must be a segment object or an array of them")
    if len(items) > MAX_SEGMENTS_PER_POST:
        raise bad_request(f"at most {MAX_SEGMENTS_PER_POST} segments per request")
    # Validated and dumped (as `dump` does) a list at a time: a bulk POST holds hundreds.
    segments = _SEGMENTS.dump_python(
        _validated_segments(items, single), mode="json", by_alias=True, exclude_none=True
    )
    await authorise_flow(request, "write", flow_id)
    await authorise_objects(request, segments)
    return await send(
        request,
        gw.topics.segments_commands,
        "segments.add",
        flow_id,
        {"flow_id": flow_id, "segments": segments, "single": single},
    )


def _validated_segments(items: list[Any], single: bool) -> list[FlowSegmentPost]:
    try:
        return _SEGMENTS.validate_python(items)
    except ValidationError as exc:
        if not single:
            raise
        # One segment was sent, not a list: its errors are the object's, not item 0's.
        raise bad_request(describe_validation_error(exc, drop_index=True)) from exc


async def refuse_taken_ids(request: web.Request, object_ids: list[str]) -> None:
    """Under a fine-grained policy, client-chosen ids that name another's media are refused
    as taken, not with the owning service's "already exist": clients (the AWS TAMS tools)
    read that as "uploaded before" and go on to register a segment of the id, which would
    then play whatever another group put there (an id squatted in advance). An id is the
    caller's when a flow they may write allocated it or uses it."""
    gw: Gateway = request.app[GATEWAY]
    access = Access.of(request)
    if not access.restricted or len(object_ids) > MAX_OBJECT_IDS:
        # More ids than an allocation takes: the segments service refuses the request before
        # it reads any of them, so they are not read here either.
        return

    def mine(tx: ReadTx, obj: ObjectRecord) -> bool:
        if obj.registered:
            return _may_use(tx, access, obj, "write")
        flow = tx.get_flow(obj.allocated_flow_id) if obj.allocated_flow_id else None
        return flow is not None and access.may(flow.get("tags"), "write")

    def taken(tx: ReadTx) -> list[str]:
        found = tx.get_objects(sorted(set(object_ids)))
        return [i for i, obj in sorted(found.items()) if not mine(tx, obj)]

    others = await gw.store.read(taken)
    if others:
        raise bad_request(
            f"object_ids taken by media you may not write: {', '.join(others[:10])}; choose "
            "other ids"
        )


async def authorise_objects(request: web.Request, segments: list[dict[str, Any]]) -> None:
    """AppNote 0016: registering an object that is already registered (reuse) needs read
    access to it (through a flow that uses it); a new object needs nothing more."""
    gw: Gateway = request.app[GATEWAY]
    access = Access.of(request)
    readable = access.policy.listing_filter(access.principal, "read")
    if readable is None:
        return
    ids = sorted(
        {s["object_id"] for s in segments}
        | {s["init_object_id"] for s in segments if s.get("init_object_id")}
    )

    def hidden(tx: ReadTx) -> list[str]:
        registered = [o for o in tx.get_objects(ids).values() if o.registered]
        return [o.object_id for o in registered if not _may_use(tx, access, o, "read")]

    refused = await gw.store.read(hidden)
    if refused:
        raise forbidden(
            f"object {refused[0]} is registered already and you may not read it, so you may "
            "not reuse it"
        )


def _may_use(tx: ReadTx, access: Access, obj: ObjectRecord, need: Permission) -> bool:
    """`need` on a registered object, which the caller has through a flow that uses it. An
    object no flow uses (its last segment was deleted, and it waits out the release grace)
    is the caller's if the flow it left was, even if that flow is gone (the classes it had
    then), so its owner can write the segment again, as the spec's way to modify a segment
    needs. An init object whose media objects all wait out the grace is still named by
    them, so it is nobody's but an admin's until they are used again or forgotten."""
    only = access.policy.listing_filter(access.principal, need)
    if only is None or tx.object_flows(obj.object_id, TagFilter(access=only), None, 1)[0]:
        return True
    if not tx.unreferenced_objects([obj.object_id]):
        # Used, but only by flows the caller may not see, soft-deleted ones included.
        return False
    # The flow it left, which may be gone by now: by that flow's classes then.
    classes = released_classes(obj.doc)
    return classes is not None and access.may({AUTH_CLASSES_TAG: list(classes)}, need)


INSTANCES_SUFFIX = "/instances"


def object_missing(object_id: str) -> ApiError:
    return not_found(f"object {object_id} does not exist (or was never registered)")


async def authorise_object(request: web.Request, object_id: str, need: Permission) -> None:
    """Instances: `need` on the object, which it has through the flows that use it."""
    gw: Gateway = request.app[GATEWAY]
    access = Access.of(request)
    if not access.restricted:
        return

    def held(tx: ReadTx) -> set[Permission] | None:
        obj = tx.get_objects([object_id]).get(object_id)
        if obj is None or not obj.registered:
            return None
        return {p for p in PERMISSIONS if _may_use(tx, access, obj, p)}

    permissions = await gw.store.read(held)
    if permissions is None or need in permissions:
        return  # a missing object is the segments service's 404
    if permissions:
        raise forbidden(f"you may not change object {object_id}")
    raise object_missing(object_id)


@routes.get("/flows/{flow_id}/segments")
async def list_segments(request: web.Request) -> web.Response:
    """A page of the flow's segments; `[]` for a flow that does not exist (the spec), 404
    only for an id that is not a UUID."""
    gw: Gateway = request.app[GATEWAY]
    flow_id = path_uuid(request.match_info["flow_id"], "flow id")
    reverse = bool(query_bool(request, "reverse_order", False))
    include_object_timerange = bool(query_bool(request, "include_object_timerange", False))
    filters = url_filter(request)
    timerange = query_timerange(request)
    object_id = request.query.get("object_id")
    limit = page_limit(request, gw.settings)
    page_key = request.query.get("page")
    access = Access.of(request)
    # The segment tags extension (docs/ext-segment-tags.md): `tag.{name}`, `tag_exists.{name}`.
    segment_tags = tag_filter(request)

    def read(tx: Any) -> tuple[SegmentPage, dict[str, ObjectRecord]]:
        if access.restricted:
            flow = tx.get_flow(flow_id)
            held = access.permissions(flow.get("tags")) if flow is not None else None
            if held is not None and "read" not in held:
                if held:
                    raise forbidden(f"you may not read flow {flow_id}")
                # No permission at all: answered as for a flow that does not exist.
                return SegmentPage(items=[], limit=limit), {}
        page = tx.list_segments(
            flow_id,
            timerange=timerange,
            object_id=object_id,
            reverse=reverse,
            page=page_key,
            limit=limit,
            tags=None if segment_tags.empty else segment_tags,
        )
        return page, objects_of(tx, page.items)

    page, objects = await gw.read_page(read)
    items = [
        segment_view(
            record,
            objects,
            urls=gw.urls,
            filters=filters,
            include_object_timerange=include_object_timerange,
        )
        for record in page.items
    ]
    covering = TimeRange.never()
    for record in page.items:
        covering = covering.covering(TimeRange.parse(record.timerange))
    headers = paging_headers(
        request,
        gw.settings,
        limit=page.limit,
        count=len(items),
        next_key=page.next_key,
        reverse_order=reverse,
        timerange=str(covering),
    )
    return web.json_response(items, headers=headers)


@routes.delete("/flows/{flow_id}/segments")
async def delete_segments(request: web.Request) -> web.Response:
    """Segments wholly inside `timerange` (default `_`), only those of `object_id` if given:
    204 when done at once, 202 with a deletion request when it continues in the background."""
    gw: Gateway = request.app[GATEWAY]
    flow_id = request.match_info["flow_id"]
    only_query(request, "timerange", "object_id")
    timerange = query_timerange(request)
    await authorise_flow(request, "delete", flow_id)
    payload: dict[str, Any] = {
        "flow_id": flow_id,
        "timerange": "_" if timerange is None else str(timerange),
    }
    object_id = request.query.get("object_id")
    if object_id is not None:
        if not object_id:
            raise bad_request("query parameter object_id is empty")
        payload["object_id"] = object_id
    return await send(request, gw.topics.segments_commands, "segments.delete", flow_id, payload)


@routes.put("/flows/{flow_id}/segments/tags/{name}")
async def put_segment_tag(request: web.Request) -> web.Response:
    """Segment tags extension: set tag `name` (a string or an array of strings) on every
    segment wholly inside `timerange` (default `_`), only those of `object_id` if given."""
    value = tag_value(await json_body(request))
    return await _segment_tag_command(request, "segments.tag.set", value=value)


@routes.delete("/flows/{flow_id}/segments/tags/{name}")
async def delete_segment_tag(request: web.Request) -> web.Response:
    """Segment tags extension: remove tag `name` from the segments `PUT` would tag."""
    return await _segment_tag_command(request, "segments.tag.delete")


async def _segment_tag_command(
    request: web.Request, command: str, **value: str | list[str]
) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    flow_id = request.match_info["flow_id"]
    only_query(request, "timerange", "object_id")
    timerange = query_timerange(request)
    name = request.match_info["name"]
    if "/" in name:  # sent as %2F: a name is one path segment (docs/ext-segment-tags.md)
        raise bad_request(f"segment tag name {name[:80]!r} contains '/'")
    if "value" in value and (size := tags_size({name: value["value"]})) > MAX_SEGMENT_TAGS_BYTES:
        raise bad_request(
            f"segment tag {name[:80]!r} would be {size} bytes of JSON; a segment's tags take "
            f"at most {MAX_SEGMENT_TAGS_BYTES} (each is written into every segment selected)"
        )
    payload: dict[str, Any] = {
        "flow_id": flow_id,
        "name": name,
        "timerange": "_" if timerange is None else str(timerange),
        **value,
    }
    object_id = request.query.get("object_id")
    if object_id is not None:
        if not object_id:
            raise bad_request("query parameter object_id is empty")
        payload["object_id"] = object_id
    await authorise_flow(request, "write", flow_id)
    return await send(request, gw.topics.segments_commands, command, flow_id, payload)


@routes.post("/objects/{object_id:.+}/instances")
async def add_instance(request: web.Request) -> web.Response:
    """`{storage_id}`: copy the object to that backend (advertised once copied); `{url, label}`:
    register an uncontrolled copy."""
    gw: Gateway = request.app[GATEWAY]
    object_id = request.match_info["object_id"]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object: {storage_id} or {url, label}")
    payload: dict[str, Any] = {"object_id": object_id}
    if "storage_id" in body:
        if "url" in body or "label" in body:
            raise bad_request("give either storage_id, or url and label, not both")
        payload["storage_id"] = ControlledInstanceRequest.model_validate(body).storage_id
    else:
        instance = UncontrolledInstanceRequest.model_validate(body)
        if not instance.label:
            raise bad_request("label must not be empty")
        payload.update(url=instance.url, label=instance.label)
    await authorise_object(request, object_id, "write")
    target = gw.backends.get(payload["storage_id"]) if "storage_id" in payload else None
    if target is not None:
        Access.of(request).require_backend(target, "write")
    return await send(request, gw.topics.segments_commands, "instances.add", object_id, payload)


@routes.delete("/objects/{object_id:.+}/instances")
async def delete_instance(request: web.Request) -> web.Response:
    """The instance on `storage_id` (controlled) or labelled `label`; never the last one."""
    gw: Gateway = request.app[GATEWAY]
    object_id = request.match_info["object_id"]
    storage_id = request.query.get("storage_id")
    label = request.query.get("label")
    if (storage_id is None) == (label is None):
        raise bad_request("give exactly one of the query parameters storage_id and label")
    payload: dict[str, Any] = {"object_id": object_id}
    if storage_id is not None:
        payload["storage_id"] = check_uuid(storage_id, "query parameter storage_id")
    else:
        payload["label"] = label
    await authorise_object(request, object_id, "write")
    backend = gw.backends.get(storage_id) if storage_id else gw.backends.by_label(label or "")
    if backend is not None:
        Access.of(request).require_backend(backend, "write")
    return await send(request, gw.topics.segments_commands, "instances.delete", object_id, payload)


@routes.get("/objects/{object_id:.+}")
async def get_object(request: web.Request) -> web.Response:
    """An object, its instances and the flows that use it. Allocated but never registered
    objects are not objects yet: 404, as the spec says."""
    gw: Gateway = request.app[GATEWAY]
    object_id = request.match_info["object_id"]
    filters = url_filter(request)
    flow_tags = tag_filter(request, "flow_tag")
    limit = page_limit(request, gw.settings)
    page_key = request.query.get("page")
    access = Access.of(request)
    readable = access.policy.listing_filter(access.principal, "read")

    def read(tx: Any) -> tuple[ObjectRecord | None, list[str], str | None, ObjectRecord | None]:
        obj = tx.get_objects([object_id]).get(object_id)
        if obj is None or not obj.registered:
            return None, [], None, None
        first = obj.first_referenced_by_flow
        if readable is not None and first:
            first_flow = tx.get_flow(first)
            if first_flow is None or not access.may(first_flow.get("tags"), "read"):
                # Named only to those who may read that flow (its existence is not disclosed).
                obj = replace(obj, first_referenced_by_flow=None)
        if readable is not None:
            # AppNote 0016: 404 unless some flow using it is readable (or, used by none, the
            # flow it left: `_may_use`); then only those are listed (none, if the caller's
            # own flow_tag filters exclude them all).
            if not _may_use(tx, access, obj, "read"):
                return None, [], None, None
            flow_tags_readable = TagFilter(flow_tags.values, flow_tags.exists, readable)
            flows, next_key = tx.object_flows(object_id, flow_tags_readable, page_key, limit)
        else:
            flows, next_key = tx.object_flows(object_id, flow_tags, page_key, limit)
        init_id = obj.doc.get("init_object_id")
        init = tx.get_objects([init_id]).get(init_id) if init_id else None
        return obj, flows, next_key, init

    obj, flows, next_key, init = await gw.read_page(read)
    if obj is None:
        if object_id.endswith(INSTANCES_SUFFIX):
            # An object id may hold slashes, so `/objects/{id}/instances` also matches this
            # route; with no object of that id, it names the instances resource, which has no
            # GET.
            raise ApiError(
                405,
                "MethodNotAllowed",
                f"method {request.method} is not allowed on {request.path}",
                headers=[("Allow", "DELETE, POST")],
            )
        raise object_missing(object_id)
    body: dict[str, Any] = {"id": object_id, "referenced_by_flows": flows}
    if obj.first_referenced_by_flow:
        body["first_referenced_by_flow"] = obj.first_referenced_by_flow
    for key in ("timerange", "key_frame_count"):
        if key in obj.doc:
            body[key] = obj.doc[key]
    body["get_urls"] = gw.urls.get_urls(obj, filters)
    if "init_object_id" in obj.doc:
        init_urls = gw.urls.get_urls(init, filters) if init else []
        body["init_object"] = {"id": obj.doc["init_object_id"], "get_urls": init_urls}
    headers = paging_headers(
        request, gw.settings, limit=limit, count=None, next_key=next_key, reverse_order=None
    )
    return web.json_response(body, headers=headers)
