"""The HLS extension (docs/ext-hls.md): a flow's segments as an HLS media playlist, VOD, or
live (an EVENT playlist that grows as segments are registered)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tams_gateway.access import Access
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.errors import bad_request, forbidden
from tams_gateway.hls import (
    MEDIA_TYPE,
    PlaylistSegment,
    playable,
    plays_whole_object,
    render_playlist,
    settled,
    usable_url,
)
from tams_gateway.requests import query_bool, query_timerange
from tams_gateway.routes.flows import flow_missing
from tams_gateway.urls import url_filter
from tams_runtime.media import UrlBuilder, UrlFilter, objects_of
from tams_schema.timerange import TimeRange, Timestamp
from tams_store import ReadTx
from tams_store.port import ObjectRecord, SegmentRecord

routes = web.RouteTableDef()

Selection = tuple[list[SegmentRecord], dict[str, ObjectRecord]]

# Playlists built at once: one at the cap takes a few hundred ms and a few MB, so a burst
# of them waits here rather than filling the gateway's memory.
PLAYLISTS_AT_ONCE = 2
_building = asyncio.Semaphore(PLAYLISTS_AT_ONCE)


@routes.get("/flows/{flow_id}/playlist.m3u8")
async def get_playlist(request: web.Request) -> web.Response:
    """An HLS media playlist of the flow's segments overlapping `timerange` (default `_`),
    each with the first of its `get_urls` the segment listing would show: VOD, or with
    `live=true` an EVENT playlist, which a player reloads to follow a flow being recorded."""
    gw: Gateway = request.app[GATEWAY]
    flow_id = request.match_info["flow_id"]
    timerange = query_timerange(request)
    live = bool(query_bool(request, "live", False))
    filters = url_filter(request)
    access = Access.of(request)
    cap = gw.settings.playlist_max_segments
    page_size = gw.settings.max_page_limit

    def read(tx: ReadTx) -> Selection | None:
        flow = tx.get_flow(flow_id)
        if flow is None:
            return None
        if access.restricted:
            # As for the segment listing: read needed; no permission at all reads as missing.
            held = access.permissions(flow.get("tags"))
            if "read" not in held:
                if held:
                    raise forbidden(f"you may not read flow {flow_id}")
                return None
        container = flow.get("container")
        if not playable(container):
            raise bad_request(
                f"flow {flow_id} has container {container!r}, which HLS cannot play "
                "(docs/ext-hls.md lists the containers it can)"
            )
        records: list[SegmentRecord] = []
        objects: dict[str, ObjectRecord] = {}
        page_key: str | None = None
        while True:
            # Pages of the listing's own query, never more than one past the cap.
            page = tx.list_segments(
                flow_id,
                timerange=timerange,
                object_id=None,
                reverse=False,
                page=page_key,
                limit=min(page_size, cap + 1 - len(records)),
            )
            records.extend(page.items)
            if len(records) > cap:
                raise bad_request(
                    f"the playlist would hold more than {cap} segments: narrow the timerange"
                )
            objects.update(objects_of(tx, page.items))
            page_key = page.next_key
            if page_key is None:
                return records, objects

    def build(selection: Selection) -> bytes:
        records, objects = selection
        urls = gw.playlist_urls
        segments = [s for s in (playlist_segment(r, objects, urls, filters) for r in records) if s]
        if live:
            # A gap at the live edge may be a segment registered out of order: wait for it.
            segments = settled(segments)
        return render_playlist(segments, live=live).encode()

    async with _building:
        selection = await gw.store.read(read)
        if selection is None:
            raise flow_missing(flow_id)
        # Off the event loop: signing and writing 10,000 URLs held it for 400-500 ms, and
        # every other request of the gateway with it (a scale audit).
        body = await asyncio.to_thread(build, selection)
    # A live playlist changes with every registration: players reload it, caches must not
    # keep it.
    headers = {"Cache-Control": "no-cache"} if live else None
    return web.Response(body=body, content_type=MEDIA_TYPE, headers=headers)


def playlist_segment(
    record: SegmentRecord,
    objects: dict[str, ObjectRecord],
    urls: UrlBuilder,
    filters: UrlFilter,
) -> PlaylistSegment | None:
    """The segment with the first of its `get_urls` (and of its init object's) under the
    request's URL filters, signed locally; None when it has no usable URL, or uses only part
    of its object (the playlist then shows a gap there)."""
    obj = objects.get(record.object_id)
    if obj is None:
        return None
    ts_offset = Timestamp.parse(record.doc["ts_offset"]).ns if "ts_offset" in record.doc else 0
    if not plays_whole_object(record.start, record.end, ts_offset, object_range(obj)):
        return None
    url = first_url(urls, obj, filters)
    if url is None:
        return None
    init_id = obj.doc.get("init_object_id") or record.doc.get("init_object_id")
    if not init_id:
        return PlaylistSegment(record.start, record.end, url, ts_offset=ts_offset)
    init = objects.get(init_id)
    init_url = first_url(urls, init, filters) if init is not None else None
    if init_url is None:
        return None  # fMP4 media without its init segment cannot be decoded
    return PlaylistSegment(record.start, record.end, url, init_id, init_url, ts_offset)


def object_range(obj: ObjectRecord) -> tuple[int, int] | None:
    """The object's own timerange (`object_timerange`) as half-open bounds, if bounded."""
    text = obj.doc.get("timerange")
    return TimeRange.parse(text).half_open() if isinstance(text, str) else None


def first_url(urls: UrlBuilder, obj: ObjectRecord, filters: UrlFilter) -> str | None:
    for entry in urls.get_urls(obj, filters):
        url = entry.get("url")
        if isinstance(url, str) and usable_url(url):
            return url
    return None
