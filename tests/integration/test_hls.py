"""The HLS extension (docs/ext-hls.md) over real HTTP: a flow's segments as a VOD media
playlist whose URLs fetch the uploaded bytes from the real S3 server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tams_stack.testing import TEST_PLAYLIST_MAX_SEGMENTS

from .helpers import allocate_and_upload, new_id, post, put_flow, video_flow
from .test_auth_resources import As, classed_flow, client  # noqa: F401 (a fixture)
from .test_init_objects import fmp4_flow, upload


@dataclass
class Entry:
    duration: str
    url: str
    discontinuity: bool
    map_uri: str | None


@dataclass
class Playlist:
    headers: dict[str, str]
    entries: list[Entry] = field(default_factory=list)


def parse(text: str) -> Playlist:
    """A media playlist: its header tags, and each segment with the tags before it."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and lines[-1] == "#EXT-X-ENDLIST", text
    playlist = Playlist({})
    duration, discontinuity, map_uri = None, False, None
    for line in lines[1:-1]:
        if line.startswith("#EXTINF:"):
            duration = line.removeprefix("#EXTINF:").removesuffix(",")
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line.startswith("#EXT-X-MAP:URI="):
            map_uri = line.removeprefix("#EXT-X-MAP:URI=").strip('"')
        elif line.startswith("#"):
            name, _, value = line.partition(":")
            playlist.headers[name] = value
        else:
            assert duration is not None, text
            playlist.entries.append(Entry(duration, line, discontinuity, map_uri))
            duration, discontinuity, map_uri = None, False, None
    return playlist


async def get_playlist(
    http: aiohttp.ClientSession, flow_id: str, query: str = "", status: int = 200
) -> Any:
    async with http.get(f"/flows/{flow_id}/playlist.m3u8{query}") as resp:
        assert resp.status == status, await resp.text()
        if status != 200:
            return await resp.json()
        assert resp.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        return parse(await resp.text())


async def fetch(url: str) -> bytes:
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url) as resp:
        assert resp.status == 200
        return await resp.read()


async def register(http: aiohttp.ClientSession, flow_id: str, segments: list[Any]) -> None:
    status, body = await post(http, flow_id, segments)
    assert status == 201, body


async def test_an_mpeg_ts_flow_with_a_gap(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    payloads = [b"ts segment a" * 50, b"ts segment b" * 50, b"ts segment c" * 50]
    objects = await allocate_and_upload(http, flow["id"], payloads)
    timeranges = ["[0:0_2:0)", "[2:0_3:500000000)", "[5:0_6:0)"]
    await register(
        http,
        flow["id"],
        [{"object_id": o, "timerange": t} for o, t in zip(objects, timeranges, strict=True)],
    )

    playlist = await get_playlist(http, flow["id"])
    assert playlist.headers == {
        "#EXT-X-VERSION": "3",
        "#EXT-X-TARGETDURATION": "2",
        "#EXT-X-MEDIA-SEQUENCE": "0",
        "#EXT-X-PLAYLIST-TYPE": "VOD",
    }
    assert [e.duration for e in playlist.entries] == ["2.0", "1.5", "1.0"]
    assert [e.discontinuity for e in playlist.entries] == [False, False, True]
    assert all(e.map_uri is None for e in playlist.entries)
    assert [await fetch(e.url) for e in playlist.entries] == payloads

    # The segments overlapping the timerange, as the listing selects them.
    only_b = await get_playlist(http, flow["id"], "?timerange=[2:0_5:0)")
    assert [await fetch(e.url) for e in only_b.entries] == payloads[1:2]
    overlapping = await get_playlist(http, flow["id"], "?timerange=[1:0_5:1)")
    assert len(overlapping.entries) == 3
    assert (await get_playlist(http, flow["id"], "?timerange=[9:0_10:0)")).entries == []
    # A URL filter that keeps no URL leaves nothing to play.
    assert (await get_playlist(http, flow["id"], "?accept_get_urls=")).entries == []


async def test_init_segments_become_ext_x_map(http: aiohttp.ClientSession) -> None:
    flow = fmp4_flow()
    await put_flow(http, flow)
    flow_id = flow["id"]
    inits = await upload(http, flow_id, [b"ftyp moov 1", b"ftyp moov 2"], "application/mp4")
    payloads = [b"moof mdat 0", b"moof mdat 1", b"moof mdat 2"]
    media = await upload(http, flow_id, payloads)
    await register(
        http,
        flow_id,
        [
            {"object_id": media[i], "timerange": f"[{i}:0_{i + 1}:0)", "init_object_id": init}
            for i, init in enumerate([inits[0], inits[0], inits[1]])
        ],
    )

    playlist = await get_playlist(http, flow_id)
    assert playlist.headers["#EXT-X-VERSION"] == "6"
    entries = playlist.entries
    assert [await fetch(e.url) for e in entries] == payloads
    # A map before the first segment and at the change of init object, with a discontinuity.
    assert entries[0].map_uri and entries[1].map_uri is None and entries[2].map_uri
    assert [e.discontinuity for e in entries] == [False, False, True]
    assert await fetch(entries[0].map_uri) == b"ftyp moov 1"
    assert await fetch(entries[2].map_uri) == b"ftyp moov 2"


async def test_at_most_the_configured_number_of_segments(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    count = TEST_PLAYLIST_MAX_SEGMENTS + 1
    objects = await allocate_and_upload(http, flow["id"], [b"x"] * count)
    await register(
        http,
        flow["id"],
        [{"object_id": o, "timerange": f"[{i}:0_{i + 1}:0)"} for i, o in enumerate(objects)],
    )
    error = await get_playlist(http, flow["id"], status=400)
    assert "narrow the timerange" in error["summary"], error
    at_limit = await get_playlist(http, flow["id"], f"?timerange=[0:0_{count - 1}:0)")
    assert len(at_limit.entries) == TEST_PLAYLIST_MAX_SEGMENTS


async def test_errors(http: aiohttp.ClientSession, gateway_url: str) -> None:
    mxf = video_flow(container="application/mxf")
    await put_flow(http, mxf)
    error = await get_playlist(http, mxf["id"], status=400)
    assert "application/mxf" in error["summary"], error
    assert (await get_playlist(http, new_id(), status=404))["type"]
    ts = video_flow()
    await put_flow(http, ts)
    error = await get_playlist(http, ts["id"], "?timerange=nonsense", status=400)
    assert "nonsense" in error["summary"], error
    async with (
        aiohttp.ClientSession(gateway_url) as anonymous,
        anonymous.get(f"/flows/{ts['id']}/playlist.m3u8") as resp,
    ):
        assert resp.status == 401


async def test_reading_needs_read_on_the_flow(
    http: aiohttp.ClientSession,
    client: aiohttp.ClientSession,  # noqa: F811
) -> None:
    news = await classed_flow(http, ["news"])
    desk = await classed_flow(http, ["desk_write"])

    async def status(who: str, flow: dict[str, Any]) -> int:
        path = f"/flows/{flow['id']}/playlist.m3u8"
        async with client.get(path, headers=As(client, who).headers) as resp:
            return resp.status

    assert await status("reader", news) == 200
    # No permission at all: as if the flow did not exist; some, but not read: 403.
    assert await status("sport", news) == 404
    assert await status("intern", desk) == 403
