"""`/service/profiles`: immutable flow profiles (ADR 0047)."""

from __future__ import annotations

from aiohttp import web

from tams_gateway.commands import send
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.errors import bad_request, not_found
from tams_gateway.paging import page_limit, paging_headers
from tams_gateway.queries import path_uuid
from tams_gateway.requests import json_body, query_mime_type
from tams_gateway.validation import validate_profile
from tams_store import Page

routes = web.RouteTableDef()

PROFILE_FORMATS = frozenset(
    {
        "urn:x-nmos:format:video",
        "urn:x-tam:format:image",
        "urn:x-nmos:format:audio",
        "urn:x-nmos:format:data",
    }
)


@routes.get("/service/profiles")
async def list_profiles(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    fmt = request.query.get("format")
    if fmt is not None and fmt not in PROFILE_FORMATS:
        raise bad_request(f"format {fmt!r} is not a profile format (video, image, audio, data)")
    limit = page_limit(request, gw.settings)
    codec, label, page_key = (
        query_mime_type(request, "codec"),
        request.query.get("label"),
        request.query.get("page"),
    )
    page: Page = await gw.read_page(
        lambda tx: tx.list_profiles(
            format=fmt, codec=codec, label=label, page=page_key, limit=limit
        )
    )
    headers = paging_headers(
        request,
        gw.settings,
        limit=page.limit,
        count=None,
        next_key=page.next_key,
        reverse_order=None,
    )
    return web.json_response(page.items, headers=headers)


@routes.get("/service/profiles/{profile_id}")
async def get_profile(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    profile_id = request.match_info["profile_id"]
    profile = await gw.store.read(lambda tx: tx.get_profile(profile_id))
    if profile is None:
        raise not_found(f"profile {profile_id} does not exist")
    return web.json_response(profile)


@routes.post("/service/profiles/{profile_id}")
async def create_profile(request: web.Request) -> web.Response:
    gw: Gateway = request.app[GATEWAY]
    profile_id = request.match_info["profile_id"]
    path_uuid(profile_id, "profile id")
    profile = validate_profile(await json_body(request))
    if profile["id"] != profile_id:
        raise bad_request(f"body id {profile['id']} does not match the profile id in the path")
    return await send(
        request, gw.topics.catalog_commands, "profiles.create", profile_id, {"profile": profile}
    )
