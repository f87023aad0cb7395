"""HEAD on every GET route: the same status and headers as GET, and no body."""

from __future__ import annotations

import aiohttp

from .helpers import new_id, put_flow, video_flow
from .test_segments import allocate_and_upload

# Headers that legitimately differ between two responses (each request gets its own id).
VOLATILE = {"Date", "Content-Length", "X-Correlation-ID"}


async def test_head_mirrors_get_on_every_route(http: aiohttp.ClientSession) -> None:
    flow = video_flow(label="head", tags={"genre": "news"}, description="d")
    await put_flow(http, flow)
    (object_id,) = await allocate_and_upload(http, flow["id"], [b"x" * 10])
    segment = {"object_id": object_id, "timerange": "[0:0_1:0)"}
    async with http.post(f"/flows/{flow['id']}/segments", json=segment) as resp:
        assert resp.status == 201
    f, s = flow["id"], flow["source_id"]
    paths = [
        "/",
        "/service",
        "/service/storage-backends",
        "/service/profiles",
        "/sources",
        "/sources?limit=1",
        f"/sources/{s}",
        f"/sources/{s}/tags",
        "/flows",
        "/flows?limit=1",
        f"/flows/{f}",
        f"/flows/{f}?include_timerange=true",
        f"/flows/{f}/tags",
        f"/flows/{f}/tags/genre",
        f"/flows/{f}/label",
        f"/flows/{f}/description",
        f"/flows/{f}/read_only",
        f"/flows/{f}/segments",
        f"/flows/{f}/segments?limit=1",
        f"/flows/{f}/playlist.m3u8",
        f"/objects/{object_id}",
        # Errors too: the same status and JSON error headers.
        f"/flows/{new_id()}",
        f"/flows/{f}/tags/missing",
        "/flows?timerange=nonsense",
        f"/flows/{f}/playlist.m3u8?timerange=nonsense",
    ]
    for path in paths:
        async with http.get(path) as got:
            await got.read()
        async with http.head(path) as head:
            body = await head.read()
        assert head.status == got.status, path
        assert body == b"", path
        got_headers = {k: v for k, v in got.headers.items() if k not in VOLATILE}
        head_headers = {k: v for k, v in head.headers.items() if k not in VOLATILE}
        assert head_headers == got_headers, path
