"""Ingest and outgest over real HTTP: allocate, upload, register, list, download."""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp

from tams_stack.stack import Stack
from tams_stack.testing import SpecValidator

from .helpers import (
    EventReader,
    allocate_and_upload,
    get_json,
    new_id,
    post,
    put_flow,
    send_json,
    status_of,
    stored_bytes,
    video_flow,
)


async def test_full_ingest_and_outgest(
    http: aiohttp.ClientSession, tams_stack: Stack, spec: SpecValidator
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    payloads = [f"segment {i} ".encode() * 1000 for i in range(4)]
    object_ids = await allocate_and_upload(http, flow["id"], payloads)
    segments = [
        {"object_id": oid, "timerange": f"[{i * 2}:0_{(i + 1) * 2}:0)", "key_frame_count": 1}
        for i, oid in enumerate(object_ids)
    ]
    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        status, _ = await post(http, flow["id"], segments[0])
        assert status == 201
        status, body = await post(http, flow["id"], segments[1:])
        assert status == 201, body

        def added_events(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            # The flow's own flows/created may land just after its PUT's reply: skip it.
            return [
                e
                for e in evs
                if e["key"] == flow["id"] and e["event_type"] == "flows/segments_added"
            ]

        added = added_events(await reader.until(lambda evs: len(added_events(evs)) >= 2))
    assert len(added) == 2
    assert [s["object_id"] for s in added[1]["event"]["segments"]] == object_ids[1:]

    listed = await get_json(http, f"/flows/{flow['id']}/segments")
    spec.validate_list(listed, "flow-segment.json")
    assert [s["object_id"] for s in listed] == object_ids
    assert [s["timerange"] for s in listed] == [s["timerange"] for s in segments]
    async with aiohttp.ClientSession() as anonymous:
        for segment, payload in zip(listed, payloads, strict=True):
            urls = [u for u in segment["get_urls"] if u["presigned"]]
            assert urls, segment
            async with anonymous.get(urls[0]["url"]) as resp:
                assert resp.status == 200
                got = await resp.read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()

    flow_now = await get_json(http, f"/flows/{flow['id']}?include_timerange=true")
    assert flow_now["timerange"] == "[0:0_8:0)"
    assert "segments_updated" in flow_now
    window = await get_json(http, f"/flows/{flow['id']}?include_timerange=true&timerange=[3:0_5:0)")
    assert window["timerange"] == "[2:0_6:0)"


async def test_listing_filters_paging_and_headers(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    object_ids = await allocate_and_upload(http, flow["id"], [b"x"] * 5)
    body = [{"object_id": o, "timerange": f"[{i}:0_{i + 1}:0)"} for i, o in enumerate(object_ids)]
    assert (await post(http, flow["id"], body))[0] == 201
    base = f"/flows/{flow['id']}/segments"

    async with http.get(f"{base}?limit=2") as resp:
        page = await resp.json()
        assert [s["timerange"] for s in page] == ["[0:0_1:0)", "[1:0_2:0)"]
        assert resp.headers["X-Paging-Timerange"] == "[0:0_2:0)"
        assert resp.headers["X-Paging-Count"] == "2"
        next_url = resp.headers["Link"][1 : resp.headers["Link"].index(">")]
    async with http.get(next_url) as resp:
        assert [s["timerange"] for s in await resp.json()] == ["[2:0_3:0)", "[3:0_4:0)"]

    newest = await get_json(http, f"{base}?reverse_order=true&limit=2")
    assert [s["timerange"] for s in newest] == ["[4:0_5:0)", "[3:0_4:0)"]
    # Overlap keeps partial matches; exclusive ends do not touch.
    window = await get_json(http, f"{base}?timerange=(1:0_3:0)")
    assert [s["timerange"] for s in window] == ["[1:0_2:0)", "[2:0_3:0)"]
    assert await get_json(http, f"{base}?timerange=[5:0_6:0)") == []
    assert [s["object_id"] for s in await get_json(http, f"{base}?object_id={object_ids[3]}")] == [
        object_ids[3]
    ]
    assert await get_json(http, f"/flows/{new_id()}/segments") == []  # unknown flow: 200 []

    no_urls = await get_json(http, f"{base}?accept_get_urls=")
    assert all(s["get_urls"] == [] for s in no_urls)
    # url-label-list.json: labels separated by single commas, none of them empty.
    for bad in (",", "a,,b", "a,"):
        await get_json(http, f"{base}?accept_get_urls={bad}", status=400)
    await get_json(http, f"{base}?accept_storage_ids={new_id()},", status=400)
    unsigned = await get_json(http, f"{base}?presigned=false")
    assert all(s["get_urls"] == [] for s in unsigned)
    brief = (await get_json(http, base))[0]["get_urls"][0]
    assert set(brief) <= {"url", "presigned", "label"}
    verbose = (await get_json(http, f"{base}?verbose_storage=true"))[0]["get_urls"][0]
    assert verbose["controlled"] is True and "storage_id" in verbose and "id" not in verbose
    with_range = (await get_json(http, f"{base}?include_object_timerange=true"))[0]
    assert with_range["object_timerange"] == "[0:0_1:0)"
    async with http.get(f"{base}?timerange=nonsense") as resp:
        assert resp.status == 400


async def test_overlaps_and_brackets(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    ids = await allocate_and_upload(http, flow["id"], [b"a"] * 6)
    assert (await post(http, flow["id"], {"object_id": ids[0], "timerange": "[10:0_20:0)"}))[
        0
    ] == 201
    # Touching on either side is fine; an instant at an exclusive end does not overlap.
    assert (await post(http, flow["id"], {"object_id": ids[1], "timerange": "[20:0_30:0)"}))[
        0
    ] == 201
    assert (await post(http, flow["id"], {"object_id": ids[2], "timerange": "[5:0_10:0)"}))[
        0
    ] == 201
    for bad in ("[19:999999999_25:0)", "[15:0]", "[0:0_6:0)", "()", "[40:0_"):
        status, error = await post(http, flow["id"], {"object_id": ids[3], "timerange": bad})
        assert status == 400, bad
        assert error["summary"], bad
    assert (await post(http, flow["id"], {"object_id": ids[3], "timerange": "(30:0_31:0)"}))[
        0
    ] == 201
    # The same registration again (a client retrying after a 504 whose first attempt was
    # applied) is still an overlap, and the error says what probably happened.
    status, error = await post(http, flow["id"], {"object_id": ids[0], "timerange": "[10:0_20:0)"})
    assert status == 400
    assert "exactly this timerange" in error["summary"] and "timed out" in error["summary"]


async def test_bulk_partial_failure_and_object_rules(http: aiohttp.ClientSession) -> None:
    flow, other = video_flow(), video_flow()
    await put_flow(http, flow)
    await put_flow(http, other)
    ids = await allocate_and_upload(http, flow["id"], [b"m"] * 3)
    async with http.post(f"/flows/{flow['id']}/storage", json={"limit": 1}) as resp:
        never_uploaded = (await resp.json())["media_objects"][0]["object_id"]
    body = [
        {"object_id": ids[0], "timerange": "[0:0_1:0)"},
        {"object_id": ids[1], "timerange": "[0:500000000_2:0)"},  # overlaps the first
        {"object_id": never_uploaded, "timerange": "[3:0_4:0)"},
        {"object_id": new_id(), "timerange": "[4:0_5:0)"},  # never allocated, no get_urls
        {"object_id": ids[2], "timerange": "[5:0_6:0)"},
    ]
    status, result = await post(http, flow["id"], body)
    assert status == 200
    failed = {f["object_id"] for f in result["failed_segments"]}
    assert failed == {ids[1], never_uploaded, body[3]["object_id"]}
    listed = await get_json(http, f"/flows/{flow['id']}/segments")
    assert [s["object_id"] for s in listed] == [ids[0], ids[2]]

    # First registration of an allocated object belongs to the allocating flow ...
    stray = await allocate_and_upload(http, other["id"], [b"s"])
    status, _ = await post(http, flow["id"], {"object_id": stray[0], "timerange": "[9:0_10:0)"})
    assert status == 400
    # ... but once registered, any flow may reuse it.
    status, _ = await post(http, other["id"], {"object_id": ids[0], "timerange": "[0:0_1:0)"})
    assert status == 201
    # An external object with its own URL.
    external = {
        "object_id": f"external-{new_id()}",
        "timerange": "[7:0_8:0)",
        "get_urls": [{"url": "https://cdn.example.com/x.ts", "label": "cdn"}],
    }
    assert (await post(http, flow["id"], external))[0] == 201
    urls = (await get_json(http, f"/flows/{flow['id']}/segments?timerange=[7:0_8:0)"))[0]
    assert urls["get_urls"] == [
        {"url": "https://cdn.example.com/x.ts", "presigned": False, "label": "cdn"}
    ]

    async with http.put(f"/flows/{flow['id']}/read_only", json=True) as resp:
        assert resp.status == 204
    assert (await post(http, flow["id"], {"object_id": ids[2], "timerange": "[20:0_21:0)"}))[
        0
    ] == 403
    assert await status_of(http, new_id(), ids[2], "[0:0_1:0)") == 404
    # An empty list is valid against the spec's schema: nothing to create, so all succeeded.
    async with http.post(f"/flows/{other['id']}/segments", json=[]) as resp:
        assert resp.status == 201
    assert [s["object_id"] for s in await get_json(http, f"/flows/{other['id']}/segments")] == [
        ids[0]
    ]
    # One segment sent alone: its errors name its fields, not item 0 of a list.
    status, error = await post(http, flow["id"], {"object_id": 5, "timerange": "[30:0_31:0)"})
    assert status == 400 and error["summary"].startswith("object_id: ")


async def test_a_segment_lies_within_its_objects_timerange(http: aiohttp.ClientSession) -> None:
    """POST /flows/{id}/segments: the segment's timerange less `ts_offset` MUST lie within
    its object's timerange, within a sample; an object's own timerange is bounded."""
    flow, other = video_flow(), video_flow()  # 25 fps: a frame is 40 ms
    await put_flow(http, flow)
    await put_flow(http, other)
    ids = await allocate_and_upload(http, flow["id"], [b"a"] * 4)
    # First registration: an object_timerange the segment is not in, or unbounded, or empty.
    for object_timerange in ("[100:0_101:0)", "_", "[100:0_", "()"):
        segment = {"object_id": ids[0], "timerange": "[7:0_8:0)"}
        status, error = await post(
            http, flow["id"], {**segment, "object_timerange": object_timerange}
        )
        assert status == 400, object_timerange
        assert "object_timerange" in error["summary"] or "outside" in error["summary"]
    # The object's media is [0:0_10:0); the segment uses its second second.
    first = {"object_id": ids[0], "timerange": "[7:0_8:0)", "ts_offset": "6:0"}
    assert (await post(http, flow["id"], {**first, "object_timerange": "[0:0_10:0)"}))[0] == 201

    # Reuse elsewhere: inside the object once moved back by ts_offset ...
    inside = {"object_id": ids[0], "timerange": "[500:0_509:0)", "ts_offset": "500:0"}
    assert (await post(http, other["id"], inside))[0] == 201
    # ... within a frame past its end (an editor cutting by interval overshoots by 1 ns) ...
    overshoot = {"object_id": ids[0], "timerange": "[600:0_610:1)", "ts_offset": "600:0"}
    assert (await post(http, other["id"], overshoot))[0] == 201
    # ... but not a second past it, nor with no ts_offset at all.
    for outside in (
        {"object_id": ids[0], "timerange": "[700:0_711:0)", "ts_offset": "700:0"},
        {"object_id": ids[0], "timerange": "[800:0_801:0)"},
    ):
        status, error = await post(http, other["id"], outside)
        assert status == 400, outside
        assert "outside the object's timerange [0:0_10:0)" in error["summary"]
    # In a bulk request, only the offending segment fails.
    status, result = await post(
        http,
        other["id"],
        [
            {"object_id": ids[0], "timerange": "[900:0_901:0)", "ts_offset": "900:0"},
            {"object_id": ids[0], "timerange": "[950:0_951:0)"},
        ],
    )
    assert status == 200
    assert [f["timerange"] for f in result["failed_segments"]] == ["[950:0_951:0)"]


async def test_a_segment_is_modified_by_deleting_it_and_writing_it_again(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    """The spec's way to correct a segment's metadata ("first delete the existing Segment and
    then write a new one"): its object, used by no other segment, is kept for the release
    grace, so the new segment finds it and may correct its properties. Properties of an
    object still in use cannot change."""
    flow = video_flow()
    await put_flow(http, flow)
    (object_id,) = await allocate_and_upload(http, flow["id"], [b"to correct"])
    segment = {"object_id": object_id, "timerange": "[0:0_2:0)", "key_frame_count": 1}
    assert (await post(http, flow["id"], segment))[0] == 201

    status, _, _ = await send_json(
        http, "DELETE", f"/flows/{flow['id']}/segments?timerange=[0:0_2:0)"
    )
    assert status == 204
    corrected = {**segment, "key_frame_count": 2, "object_timerange": "[0:0_2:0)"}
    status, body = await post(http, flow["id"], corrected)
    assert status == 201, body
    obj = await get_json(http, f"/objects/{object_id}")
    assert (obj["key_frame_count"], obj["referenced_by_flows"]) == (2, [flow["id"]])
    (listed,) = await get_json(http, f"/flows/{flow['id']}/segments")
    assert listed["key_frame_count"] == 2
    assert await stored_bytes(tams_stack, object_id) == b"to correct"

    # Still in use (by the segment just written): its properties stay.
    reuse = {**corrected, "timerange": "[2:0_4:0)", "ts_offset": "2:0", "key_frame_count": 3}
    status, error = await post(http, flow["id"], reuse)
    assert status == 400 and "key_frame_count 2" in error["summary"]
    # Nor may two segments of one request give it different values.
    status, _, _ = await send_json(http, "DELETE", f"/flows/{flow['id']}/segments")
    assert status == 204
    status, result = await post(
        http, flow["id"], [{**corrected, "key_frame_count": 4}, {**reuse, "key_frame_count": 5}]
    )
    assert status == 200, result
    assert [f["timerange"] for f in result["failed_segments"]] == ["[2:0_4:0)"]
    assert (await get_json(http, f"/objects/{object_id}"))["key_frame_count"] == 4


async def test_an_object_timerange_off_the_timeline_is_refused(
    http: aiohttp.ClientSession,
) -> None:
    """A segment near the end of the 64-bit timeline, moved back by a negative `ts_offset`,
    would give its object a timerange no request could name (and every later reuse of the
    object failed with a 500): a 400, or a failed item in a bulk request."""
    flow = video_flow()
    await put_flow(http, flow)
    ids = await allocate_and_upload(http, flow["id"], [b"a", b"b"])
    late = "[9223372035:0_9223372036:0)"
    status, error = await post(
        http, flow["id"], {"object_id": ids[0], "timerange": late, "ts_offset": "-5:0"}
    )
    assert status == 400, error
    assert "64-bit" in error["summary"]
    status, result = await post(
        http,
        flow["id"],
        [
            {"object_id": ids[1], "timerange": late, "ts_offset": "-5:0"},
            {"object_id": ids[1], "timerange": "[0:0_1:0)"},
        ],
    )
    assert status == 200, result
    assert [f["timerange"] for f in result["failed_segments"]] == [late]
    # The object was never registered with the bad range: it can still be used.
    assert (await post(http, flow["id"], {"object_id": ids[0], "timerange": late}))[0] == 201
    reuse = {"object_id": ids[0], "timerange": "[1:0_2:0)", "ts_offset": "-9223372034:0"}
    assert (await post(http, flow["id"], reuse))[0] == 201


async def test_registration_adds_urls_and_keeps_object_properties(
    http: aiohttp.ClientSession,
) -> None:
    """A segment's get_urls add uncontrolled URLs to its object, also to one allocated here or
    registered before; a reuse may not change the object's key frames nor break the rule that
    its content-type is the flow's container (flow-segment-post.json)."""
    flow, other = video_flow(), video_flow()
    await put_flow(http, flow)
    await put_flow(http, other)
    object_id = (await allocate_and_upload(http, flow["id"], [b"media"]))[0]
    mirror = {"url": "https://mirror.example.com/a.ts", "label": "mirror"}
    first = {"object_id": object_id, "timerange": "[0:0_1:0)", "key_frame_count": 1}
    assert (await post(http, flow["id"], {**first, "get_urls": [mirror]}))[0] == 201

    def uncontrolled(obj: dict[str, Any]) -> list[tuple[str, str]]:
        return [(u["label"], u["url"]) for u in obj["get_urls"] if not u.get("controlled")]

    got = await get_json(http, f"/objects/{object_id}?verbose_storage=true")
    assert uncontrolled(got) == [("mirror", mirror["url"])]
    assert any(u.get("controlled") for u in got["get_urls"])

    # Reused by another flow with one URL it has and one it has not.
    cdn = {"url": "https://cdn.example.com/a.ts", "label": "cdn"}
    reuse = {"object_id": object_id, "timerange": "[5:0_6:0)", "ts_offset": "5:0"}
    assert (await post(http, other["id"], {**reuse, "get_urls": [mirror, cdn]}))[0] == 201
    got = await get_json(http, f"/objects/{object_id}?verbose_storage=true")
    assert uncontrolled(got) == [("mirror", mirror["url"]), ("cdn", cdn["url"])]

    # A label the object has, with another URL, is refused, and nothing is registered.
    moved = {
        **reuse,
        "timerange": "[6:0_7:0)",
        "ts_offset": "6:0",
        "get_urls": [{**cdn, "url": "https://x/a.ts"}],
    }
    status, error = await post(http, other["id"], moved)
    assert status == 400 and "cdn" in error["summary"]
    assert (await post(http, other["id"], {**moved, "get_urls": [{**cdn, "label": "c2"}]}))[
        0
    ] == 400
    assert len(await get_json(http, f"/flows/{other['id']}/segments")) == 1

    # Key frames are the object's: the same count is fine, another is refused.
    same = {**reuse, "timerange": "[7:0_8:0)", "ts_offset": "7:0", "key_frame_count": 1}
    assert (await post(http, other["id"], same))[0] == 201
    status, error = await post(
        http,
        other["id"],
        {**same, "timerange": "[8:0_9:0)", "ts_offset": "8:0", "key_frame_count": 7},
    )
    assert status == 400 and "key_frame_count" in error["summary"]
    assert (await get_json(http, f"/objects/{object_id}"))["key_frame_count"] == 1

    # An MPEG-TS object in an MP4 flow.
    mp4 = video_flow(container="video/mp4")
    await put_flow(http, mp4)
    status, error = await post(http, mp4["id"], {**reuse, "timerange": "[0:0_1:0)"})
    assert status == 400 and "video/mp4" in error["summary"]


async def test_values_must_have_the_schema_types(http: aiohttp.ClientSession) -> None:
    """No coercion: "3" or true is not an integer, and a duration is not negative."""
    flow = video_flow()
    await put_flow(http, flow)
    ids = await allocate_and_upload(http, flow["id"], [b"a"])
    segment = {"object_id": ids[0], "timerange": "[0:0_1:0)"}
    for bad in (
        {"key_frame_count": "3"},
        {"key_frame_count": True},
        {"key_frame_count": 3.0},
        {"sample_count": "3"},
        {"last_duration": "-1:0"},
        # Counts: never negative, and within the stores' 64-bit integers.
        {"key_frame_count": -1},
        {"sample_offset": -5},
        {"sample_count": 10**30},
        # An empty id names nothing.
        {"object_id": ""},
        # Others will fetch these URLs (and players read them from playlists, one a line).
        {"get_urls": [{"url": "not a url", "label": "x"}]},
        {"get_urls": [{"url": "javascript:alert(1)", "label": "x"}]},
        {"get_urls": [{"url": "http://example.com/a\r\n#EXT-X-ENDLIST", "label": "x"}]},
    ):
        status, error = await post(http, flow["id"], {**segment, **bad})
        assert status == 400, bad
        assert next(iter(bad)) in error["summary"], (bad, error)
    assert await get_json(http, f"/flows/{flow['id']}/segments") == []
    async with http.post(f"/flows/{flow['id']}/storage", json={"limit": "3"}) as resp:
        assert resp.status == 400
    wide = video_flow()
    wide["essence_parameters"] = {**wide["essence_parameters"], "frame_width": "1920"}
    async with http.put(f"/flows/{wide['id']}", json=wide) as resp:
        assert resp.status == 400
        assert "frame_width" in (await resp.json())["summary"]
    await get_json(http, f"/flows/{wide['id']}", status=404)
    assert (await post(http, flow["id"], {**segment, "last_duration": "0:5"}))[0] == 201


async def test_ids_in_the_path_and_query_must_be_uuids(http: aiohttp.ClientSession) -> None:
    # The spec's 404 "Flow ID in the path is invalid"; a flow that merely does not exist
    # has no segments.
    await get_json(http, "/flows/not-a-uuid/segments", status=404)
    async with http.head("/flows/not-a-uuid/segments") as resp:
        assert resp.status == 404
    assert await get_json(http, f"/flows/{new_id()}/segments") == []
    flow = video_flow()
    async with http.put("/flows/not-a-uuid", json={**flow, "id": "not-a-uuid"}) as resp:
        assert resp.status == 404
    await put_flow(http, flow)
    await get_json(http, f"/flows/{flow['id']}/segments?accept_storage_ids=not-a-uuid", status=400)
    assert await get_json(http, f"/flows/{flow['id']}/segments?accept_storage_ids=") == []


async def test_objects_endpoint(http: aiohttp.ClientSession, spec: SpecValidator) -> None:
    first, second = video_flow(tags={"team": "news"}), video_flow(tags={"team": "sport"})
    await put_flow(http, first)
    await put_flow(http, second)
    object_id = (await allocate_and_upload(http, first["id"], [b"shared object"]))[0]
    segment = {"object_id": object_id, "timerange": "[0:0_2:0)", "key_frame_count": 3}
    assert (await post(http, first["id"], segment))[0] == 201
    reuse = {**segment, "timerange": "[10:0_12:0)", "ts_offset": "10:0"}
    assert (await post(http, second["id"], reuse))[0] == 201

    got = await get_json(http, f"/objects/{object_id}")
    spec.validate(got, "object.json")
    assert sorted(got["referenced_by_flows"]) == sorted([first["id"], second["id"]])
    assert got["first_referenced_by_flow"] == first["id"]
    assert got["timerange"] == "[0:0_2:0)" and got["key_frame_count"] == 3
    assert got["get_urls"] and got["get_urls"][0]["presigned"] is True
    sport = await get_json(http, f"/objects/{object_id}?flow_tag.team=sport")
    assert sport["referenced_by_flows"] == [second["id"]]
    async with http.get(f"/objects/{object_id}?limit=1") as resp:
        assert len((await resp.json())["referenced_by_flows"]) == 1
        assert "Link" in resp.headers
    assert (await get_json(http, f"/objects/{object_id}?accept_get_urls="))["get_urls"] == []

    async with http.post(f"/flows/{first['id']}/storage", json={"limit": 1}) as resp:
        unregistered = (await resp.json())["media_objects"][0]["object_id"]
    await get_json(http, f"/objects/{unregistered}", status=404)
    await get_json(http, f"/objects/{new_id()}", status=404)


async def test_deleting_a_flow_removes_its_segments(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    ids = await allocate_and_upload(http, flow["id"], [b"d"] * 2)
    body = [{"object_id": o, "timerange": f"[{i}:0_{i + 1}:0)"} for i, o in enumerate(ids)]
    assert (await post(http, flow["id"], body))[0] == 201
    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        async with http.delete(f"/flows/{flow['id']}") as resp:
            assert resp.status == 204

        def mine(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e for e in evs if e["key"] == flow["id"]]

        events = mine(await reader.until(lambda evs: len(mine(evs)) >= 2))
    assert [e["event_type"] for e in events] == ["flows/segments_deleted", "flows/deleted"]
    assert events[0]["event"] == {"flow_id": flow["id"], "timerange": "[0:0_2:0)"}
    assert await get_json(http, f"/flows/{flow['id']}/segments") == []
    await put_flow(http, flow)  # the same id again starts empty
    assert await get_json(http, f"/flows/{flow['id']}/segments") == []
    again = await get_json(http, f"/flows/{flow['id']}?include_timerange=true")
    assert again["timerange"] == "()"


async def test_the_last_nanosecond_of_the_timeline_is_not_its_neighbour(
    http: aiohttp.ClientSession,
) -> None:
    """Segments are stored as half-open int64 ranges, and `[9223372036:854775807]` has no
    int64 exclusive end: it was stored as `[...806_...807)`, so the instant just before it
    was refused as an overlap, listed by a query for that instant, and a DELETE of that
    instant deleted it. A time the store cannot hold must be refused, not moved."""
    flow = video_flow()
    await put_flow(http, flow)
    top, before = "9223372036:854775807", "9223372036:854775806"
    ids = await allocate_and_upload(http, flow["id"], [b"a", b"b"])
    top_status, error = await post(http, flow["id"], {"object_id": ids[0], "timerange": f"[{top}]"})
    # Refusing the one time the store cannot hold is fine; storing it as another is not.
    assert top_status in (201, 400), error
    if top_status == 400:
        assert "out of range" in error["summary"], error
    status, error = await post(http, flow["id"], {"object_id": ids[1], "timerange": f"[{before}]"})
    assert status == 201, error
    segments = f"/flows/{flow['id']}/segments"
    listed = await get_json(http, f"{segments}?timerange=%5B{before}%5D")
    assert [s["timerange"] for s in listed] == [f"[{before}]"]
    async with http.delete(f"{segments}?timerange=%5B{before}%5D") as resp:
        assert resp.status == 204, await resp.text()
    left = [s["timerange"] for s in await get_json(http, segments)]
    assert left == ([f"[{top}]"] if top_status == 201 else [])
