"""The segment tags extension (docs/ext-segment-tags.md) over real HTTP: set and remove tags
on a flow's segments, see them in segment listings, filter by them, and the limits, errors
and permissions of the new routes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from tams_stack.testing import TEST_SEGMENT_TAG_LIMIT, SpecValidator

from .helpers import (
    allocate_and_upload,
    get_json,
    list_all,
    new_id,
    post,
    put_flow,
    send_json,
    video_flow,
)
from .test_auth_resources import As, classed_flow, client  # noqa: F401 (a fixture)
from .test_deletion import flow_with_segments


def tags_path(flow_id: str, name: str, **query: str) -> str:
    path = f"/flows/{flow_id}/segments/tags/{quote(name, safe='')}"
    if query:
        path += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    return path


async def tagged(http: aiohttp.ClientSession, flow_id: str, query: str = "") -> list[int]:
    """Which segments (their start second) a listing with this query holds, every page."""
    listed = await list_all(http, f"/flows/{flow_id}/segments?limit=2{query}")
    return [int(s["timerange"][1:].split(":")[0]) for s in listed]


async def test_tags_are_set_listed_filtered_and_removed(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    # Six one-second segments [i:0_i+1:0) over three objects: i and i+3 share one.
    flow, _objects, used = await flow_with_segments(http, 6, objects=3)
    flow_id = flow["id"]
    plain = await get_json(http, f"/flows/{flow_id}/segments")
    assert all("tags" not in s for s in plain)
    registered = (await get_json(http, f"/flows/{flow_id}"))["segments_updated"]

    status, body, _ = await send_json(
        http, "PUT", tags_path(flow_id, "genre", timerange="[0:0_3:0)"), "news"
    )
    assert status == 204, body
    status, body, _ = await send_json(
        http, "PUT", tags_path(flow_id, "take", object_id=used[1]), ["a", "b"]
    )
    assert status == 204, body

    listed = await get_json(http, f"/flows/{flow_id}/segments")
    spec.validate_list(listed, "flow-segment.json")
    assert [s.get("tags") for s in listed] == [
        {"genre": "news"},
        {"genre": "news", "take": ["a", "b"]},
        {"genre": "news"},
        None,
        {"take": ["a", "b"]},
        None,
    ]
    # What the listing shows changed, and segments_updated says so.
    assert (await get_json(http, f"/flows/{flow_id}"))["segments_updated"] > registered
    # Everything else about a segment is as before.
    assert [{k: v for k, v in s.items() if k != "tags"} for s in listed] == plain

    assert await tagged(http, flow_id, "&tag.genre=news") == [0, 1, 2]
    assert await tagged(http, flow_id, "&tag.genre=sport,news") == [0, 1, 2]
    assert await tagged(http, flow_id, "&tag.take=b") == [1, 4]
    assert await tagged(http, flow_id, "&tag_exists.genre=false") == [3, 4, 5]
    assert await tagged(http, flow_id, "&tag_exists.take=true&tag.genre=news") == [1]
    assert await tagged(http, flow_id, "&tag.genre=news&timerange=[2:0_6:0)") == [2]
    assert await tagged(http, flow_id, f"&tag.take=a&object_id={used[4]}") == [1, 4]
    assert await tagged(http, flow_id, "&tag.take=a&reverse_order=true") == [4, 1]
    assert await tagged(http, flow_id, "&tag.genre=weather") == []

    # Removing: only from the segments selected; removing what is not there is no error.
    status, body, _ = await send_json(
        http, "DELETE", tags_path(flow_id, "genre", timerange="[1:0_2:0)")
    )
    assert status == 204, body
    assert await tagged(http, flow_id, "&tag_exists.genre=true") == [0, 2]
    for _ in range(2):
        status, body, _ = await send_json(http, "DELETE", tags_path(flow_id, "take"))
        assert status == 204, body
    assert await tagged(http, flow_id, "&tag_exists.take=true") == []
    assert [s.get("tags") for s in await get_json(http, f"/flows/{flow_id}/segments")] == [
        {"genre": "news"},
        None,
        {"genre": "news"},
        None,
        None,
        None,
    ]


async def test_tags_stay_with_the_flow_when_an_object_is_reused(
    http: aiohttp.ClientSession,
) -> None:
    flow, _objects, used = await flow_with_segments(http, 2)
    other = video_flow()
    await put_flow(http, other)
    reuse = {"object_id": used[0], "timerange": "[5:0_6:0)", "ts_offset": "5:0"}
    status, body = await post(http, other["id"], reuse)
    assert status == 201, body
    status, body, _ = await send_json(http, "PUT", tags_path(flow["id"], "genre"), "news")
    assert status == 204, body
    assert [s.get("tags") for s in await get_json(http, f"/flows/{other['id']}/segments")] == [None]
    assert await tagged(http, other["id"], "&tag.genre=news") == []
    assert await tagged(http, flow["id"], "&tag.genre=news") == [0, 1]


async def test_bad_requests_limits_and_missing_or_read_only_flows(
    http: aiohttp.ClientSession,
) -> None:
    flow, _objects, _used = await flow_with_segments(http, TEST_SEGMENT_TAG_LIMIT + 1, objects=2)
    flow_id = flow["id"]
    for bad in (3, {"a": "b"}, ["a", 1], None):
        status, body, _ = await send_json(http, "PUT", tags_path(flow_id, "genre"), bad)
        assert status == 400, (bad, body)
    status, body, _ = await send_json(
        http, "PUT", tags_path(flow_id, "genre", timerange="[1:0_"), "x"
    )
    assert status == 204, body  # an open-ended timerange is fine
    status, body, _ = await send_json(
        http, "PUT", tags_path(flow_id, "genre", timerange="yesterday"), "x"
    )
    assert status == 400 and "yesterday" in body["summary"], body
    status, body, _ = await send_json(http, "DELETE", tags_path(flow_id, "genre", object_id=""))
    assert status == 400, body
    status, body, _ = await send_json(http, "GET", f"/flows/{flow_id}/segments?tag_exists.x=maybe")
    assert status == 400, body
    # A name is one path segment: an encoded '/' does not make one.
    one_segment = quote("[0:0_1:0)", safe="")
    path = f"/flows/{flow_id}/segments/tags/a%2Fb?timerange={one_segment}"
    async with http.put(URL(path, encoded=True), json="x") as resp:
        assert resp.status == 400 and "'/'" in (await resp.json())["summary"]

    # One segment too many for one request: refused whole, nothing tagged.
    status, body, _ = await send_json(http, "PUT", tags_path(flow_id, "all"), "yes")
    assert status == 400 and str(TEST_SEGMENT_TAG_LIMIT) in body["summary"], body
    assert await tagged(http, flow_id, "&tag_exists.all=true") == []
    # In parts it works.
    for part in ("[0:0_6:0)", "[6:0_"):
        status, body, _ = await send_json(
            http, "PUT", tags_path(flow_id, "all", timerange=part), "yes"
        )
        assert status == 204, body
    assert len(await tagged(http, flow_id, "&tag.all=yes")) == TEST_SEGMENT_TAG_LIMIT + 1

    status, body, _ = await send_json(http, "PUT", tags_path(new_id(), "genre"), "x")
    assert status == 404, body
    status, body, _ = await send_json(http, "DELETE", tags_path(new_id(), "genre"))
    assert status == 404, body

    status, body, _ = await send_json(http, "PUT", f"/flows/{flow_id}/read_only", True)
    assert status == 204, body
    status, body, _ = await send_json(http, "PUT", tags_path(flow_id, "genre"), "x")
    assert status == 403, body
    status, body, _ = await send_json(http, "DELETE", tags_path(flow_id, "all"))
    assert status == 403, body
    assert len(await tagged(http, flow_id, "&tag.all=yes")) == TEST_SEGMENT_TAG_LIMIT + 1


async def test_segment_tag_routes_need_write_on_the_flow(
    http: aiohttp.ClientSession,
    client: aiohttp.ClientSession,  # noqa: F811
) -> None:
    async def classed_with_segment(classes: list[str]) -> dict[str, Any]:
        flow = await classed_flow(http, classes)
        (object_id,) = await allocate_and_upload(http, flow["id"], [b"media"])
        status, body = await post(
            http, flow["id"], {"object_id": object_id, "timerange": "[0:0_1:0)"}
        )
        assert status == 201, body
        return flow

    news_flow = await classed_with_segment(["news"])
    shared = await classed_with_segment(["news", "news_ro"])
    news, sport = As(client, "news"), As(client, "sport")
    # The scope: reading is not writing.
    status, body = await As(client, "reader").send("PUT", tags_path(news_flow["id"], "a"), "x")
    assert status == 403 and "scope" in body["summary"], body
    # No permission at all on the flow: as if it did not exist.
    assert (await sport.send("PUT", tags_path(news_flow["id"], "a"), "x"))[0] == 404
    # Read but not write: 403; reading (and filtering) is allowed.
    assert (await sport.send("PUT", tags_path(shared["id"], "a"), "x"))[0] == 403
    assert (await sport.send("DELETE", tags_path(shared["id"], "a")))[0] == 403
    assert (await news.send("PUT", tags_path(shared["id"], "a"), "x"))[0] == 204
    assert len(await sport.all(f"/flows/{shared['id']}/segments?tag.a=x")) == 1
    # Filtering never reveals segments of a flow the caller may not read.
    assert await sport.all(f"/flows/{news_flow['id']}/segments?tag_exists.a=false") == []


async def test_a_segments_tags_are_bounded_in_size(http: aiohttp.ClientSession) -> None:
    """A tag is written into every selected segment and every listing of them carries it:
    unbounded, a 100 KB value on 1,000 segments wrote 100 MB in one transaction (4 s holding
    every other write; 1 MB would be a gigabyte) and listings of as much. A segment's tags
    take at most 16 KiB of JSON, and a request that would take one past it is refused
    whole."""
    flow, _objects, _used = await flow_with_segments(http, 4, objects=1)
    flow_id = flow["id"]
    fits = "v" * (16 * 1024 - len('{"big":""}'))  # exactly the limit
    status, body, _ = await send_json(http, "PUT", tags_path(flow_id, "big"), fits + "v")
    assert status == 400 and "16384" in body["summary"], body
    status, body, _ = await send_json(http, "PUT", tags_path(flow_id, "big"), fits)
    assert status == 204, body
    # With another tag, the first two segments would go past it: none is changed.
    status, body, _ = await send_json(
        http, "PUT", tags_path(flow_id, "more", timerange="[0:0_2:0)"), "x"
    )
    assert status == 400 and "nothing was changed" in body["summary"], body
    assert await tagged(http, flow_id, "&tag_exists.more=true") == []
    assert await tagged(http, flow_id, "&tag_exists.big=true") == [0, 1, 2, 3]
