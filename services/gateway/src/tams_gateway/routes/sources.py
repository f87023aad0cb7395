"""`/sources` and a source's tags, label and description (sources live and die with flows)."""

from __future__ import annotations

from typing import get_args

from aiohttp import web

from tams_gateway.access import Access, check_auth_classes_value
from tams_gateway.commands import send
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.errors import ApiError, not_found
from tams_gateway.paging import page_limit, page_response
from tams_gateway.queries import choice, tag_filter, uuid_list
from tams_gateway.requests import json_body, query_bool, query_format
from tams_gateway.values import json_string, tag_value
from tams_schema.auth import AUTH_CLASSES_TAG
from tams_store import Page, SourceQuery
from tams_store.port import Doc, SourceSort

routes = web.RouteTableDef()

SOURCE_SORTS: tuple[SourceSort, ...] = get_args(SourceSort)


@routes.get("/sources")
async def list_sources(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    reverse = bool(query_bool(request, "reverse_order", False))
    query = SourceQuery(
        label=request.query.get("label"),
        format=query_format(request),
        tags=Access.of(request).listing(tag_filter(request)),
        collected_by_ids=uuid_list(request, "collected_by_ids"),
        sort_by=choice(request, "sort_by", SOURCE_SORTS, "created"),
        reverse_order=reverse,
        page=request.query.get("page"),
        limit=page_limit(request, gw.settings),
    )
    access = Access.of(request)
    page: Page = await gw.read_page(
        lambda tx: access.collected_page(query, tx.list_sources, tx.get_source)
    )
    return page_response(request, gw.settings, page, reverse_order=reverse)


def source_missing(source_id: str) -> ApiError:
    return not_found(f"source {source_id} does not exist")


async def load_source(request: web.Request) -> Doc:
    """The source of the path, if the caller may read it (else the 404 of a missing one)."""
    gw: Gateway = request.app[GATEWAY]
    source_id = request.match_info["source_id"]
    source = await gw.store.read(lambda tx: tx.get_source(source_id))
    if source is None:
        raise source_missing(source_id)
    access = Access.of(request)
    access.require(source.get("tags"), "read", f"source {source_id}", source_missing(source_id))
    return source


async def authorise_source(request: web.Request) -> Doc | None:
    """Before a change: write on the source (under fine-grained authorisation); a missing
    source is left to the catalog's 404."""
    gw: Gateway = request.app[GATEWAY]
    access = Access.of(request)
    if not access.restricted:
        return None
    source_id = request.match_info["source_id"]
    source = await gw.store.read(lambda tx: tx.get_source(source_id))
    if source is not None:
        missing = source_missing(source_id)
        access.require(source.get("tags"), "write", f"source {source_id}", missing)
    return source


@routes.get("/sources/{source_id}")
async def get_source(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    source = await load_source(request)
    access = Access.of(request)
    if access.restricted and source.get("collected_by"):
        await gw.store.read(lambda tx: access.hide_collectors([source], tx.get_source))
    return web.json_response(source)


@routes.get("/sources/{source_id}/tags")
async def get_source_tags(request: web.Request) -> web.Response:
    return web.json_response((await load_source(request)).get("tags", {}))


@routes.get("/sources/{source_id}/tags/{name}")
async def get_source_tag(request: web.Request) -> web.Response:
    source = await load_source(request)
    name = request.match_info["name"]
    tags = source.get("tags", {})
    if name not in tags:
        raise not_found(f"source {source['id']} has no tag {name!r}")
    return web.json_response(tags[name])


async def _command(request: web.Request, command: str, **payload: object) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    source_id = request.match_info["source_id"]
    source = await authorise_source(request)
    name = payload.get("name")
    if source is not None and name == AUTH_CLASSES_TAG and command.startswith("sources.tag."):
        value = payload.get("value")
        Access.of(request).check_classes_change(
            f"source {source_id}",
            source.get("tags"),
            {AUTH_CLASSES_TAG: value} if value is not None else {},
            exists=True,
        )
    return await send(
        request,
        gw.topics.catalog_commands,
        command,
        source_id,
        {"source_id": source_id, **payload},
    )


@routes.put("/sources/{source_id}/tags/{name}")
async def put_source_tag(request: web.Request) -> web.Response:
    value = tag_value(await json_body(request))
    if request.match_info["name"] == AUTH_CLASSES_TAG:
        check_auth_classes_value({AUTH_CLASSES_TAG: value})
    return await _command(request, "sources.tag.set", name=request.match_info["name"], value=value)


@routes.delete("/sources/{source_id}/tags/{name}")
async def delete_source_tag(request: web.Request) -> web.Response:
    return await _command(request, "sources.tag.delete", name=request.match_info["name"])


def _property_routes(prop: str) -> None:
    async def get(request: web.Request) -> web.Response:
        source = await load_source(request)
        if prop not in source:
            raise not_found(f"source {source['id']} has no {prop}")
        return web.json_response(source[prop])

    async def put(request: web.Request) -> web.Response:
        value = json_string(await json_body(request), prop)
        return await _command(request, "sources.property.set", name=prop, value=value)

    async def delete(request: web.Request) -> web.Response:
        return await _command(request, "sources.property.delete", name=prop)

    path = f"/sources/{{source_id}}/{prop}"
    routes.get(path)(get)
    routes.put(path)(put)
    routes.delete(path)(delete)


for _prop in ("label", "description"):
    _property_routes(_prop)
