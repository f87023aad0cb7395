"""Deleting segments and flows, at once (204) and through deletion requests (202).

The test stack answers deletions of at most TEST_SYNC_DELETE_LIMIT segments at once and
works through larger ones in chunks of TEST_DELETE_CHUNK, so a few dozen segments exercise
the asynchronous path.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from tams_runtime import deletion
from tams_schema.timerange import TimeRange
from tams_stack.stack import Stack
from tams_stack.testing import TEST_DELETE_CHUNK, TEST_SYNC_DELETE_LIMIT, SpecValidator

from .helpers import (
    EventReader,
    allocate_and_upload,
    eventually,
    get_json,
    list_all,
    new_id,
    paused,
    post,
    put_flow,
    send_json,
    stack_collector,
    stack_media_settings,
    stack_store,
    status_of,
    stored_bytes,
    video_flow,
)


async def flow_with_segments(
    http: aiohttp.ClientSession, count: int, objects: int | None = None
) -> tuple[dict[str, Any], list[str], list[str]]:
    """A flow with `count` one-second segments [i:0_i+1:0) over `objects` uploaded objects
    (reused round-robin). Returns the flow, the object ids, and each segment's object id."""
    flow = video_flow()
    await put_flow(http, flow)
    object_ids = await allocate_and_upload(
        http, flow["id"], [f"media {i}".encode() for i in range(objects or count)]
    )
    used = [object_ids[i % len(object_ids)] for i in range(count)]
    # A reused object's media is [j:0_j+1:0), from its first segment j: ts_offset maps it.
    body = [
        {
            "object_id": o,
            "timerange": f"[{i}:0_{i + 1}:0)",
            "ts_offset": f"{i - i % len(object_ids)}:0",
        }
        for i, o in enumerate(used)
    ]
    status, result = await post(http, flow["id"], body)
    assert status == 201, result
    return flow, object_ids, used


def of_flow(flow_id: str, kind: str) -> Any:
    def select(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e["key"] == flow_id and e["event_type"] == kind]

    return select


async def timeranges(http: aiohttp.ClientSession, flow_id: str) -> list[str]:
    return [s["timerange"] for s in await list_all(http, f"/flows/{flow_id}/segments")]


async def gone_from_s3(stack: Stack, object_id: str) -> bool:
    return await stored_bytes(stack, object_id) is None


async def follow(
    http: aiohttp.ClientSession, location: str, spec: SpecValidator
) -> list[dict[str, Any]]:
    """Poll a deletion request until it is done; returns every distinct state seen."""
    seen: list[dict[str, Any]] = []

    async def done() -> bool:
        request = await get_json(http, location)
        spec.validate(request, "deletion-request.json")
        if not seen or request != seen[-1]:
            seen.append(request)
        assert request["status"] != "error", request
        return bool(request["status"] == "done")

    await eventually(done, f"deletion request {location} to finish")
    return seen


async def object_status(http: aiohttp.ClientSession, object_id: str, status: int) -> bool:
    async with http.get(f"/objects/{object_id}") as resp:
        return resp.status == status


async def test_a_small_delete_removes_only_wholly_covered_segments(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    flow, _, used = await flow_with_segments(http, 6)
    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        # [3:0_4:0) ends after 3.5 s: only partly covered, so it stays.
        status, body, _ = await send_json(
            http, "DELETE", f"/flows/{flow['id']}/segments?timerange=[1:0_3:500000000)"
        )
        assert status == 204, body
        deleted = of_flow(flow["id"], "flows/segments_deleted")
        events = deleted(await reader.until(lambda evs: len(deleted(evs)) >= 1))
    assert events[0]["event"] == {"flow_id": flow["id"], "timerange": "[1:0_3:0)"}
    assert events[0]["headers"]["tams-source-id"] == flow["source_id"]
    assert await timeranges(http, flow["id"]) == [
        "[0:0_1:0)",
        "[3:0_4:0)",
        "[4:0_5:0)",
        "[5:0_6:0)",
    ]

    # Retention-style deletion of everything before 5 s, then the flow's extent follows.
    status, _, _ = await send_json(http, "DELETE", f"/flows/{flow['id']}/segments?timerange=_5:0)")
    assert status == 204
    assert await timeranges(http, flow["id"]) == ["[5:0_6:0)"]
    got = await get_json(http, f"/flows/{flow['id']}?include_timerange=true")
    assert got["timerange"] == "[5:0_6:0)"
    # Objects of deleted segments are kept for the release grace, used by no flow, then
    # collected: unknown to the API, bytes gone from S3.
    kept = await get_json(http, f"/objects/{used[0]}")
    assert kept["referenced_by_flows"] == []
    for object_id in used[:5]:
        await eventually(lambda o=object_id: object_status(http, o, 404), f"{object_id} gone")
        await eventually(lambda o=object_id: gone_from_s3(tams_stack, o), f"{object_id} deleted")
    assert await stored_bytes(tams_stack, used[5]) == b"media 5"

    status, _, _ = await send_json(http, "DELETE", f"/flows/{flow['id']}/segments")
    assert status == 204  # default timerange `_`: everything
    assert await timeranges(http, flow["id"]) == []
    got = await get_json(http, f"/flows/{flow['id']}?include_timerange=true")
    assert got["timerange"] == "()"


async def test_a_collected_client_chosen_id_can_be_allocated_and_registered_again(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    # The registrar remembers ids it saw registered and does not look them up again; an id
    # collected and then allocated anew must still be checked for its upload. (It can be
    # allocated again only once no put_url handed out for it can upload: the collector runs
    # here with its clock set past that.)
    flow = video_flow()
    await put_flow(http, flow)
    object_id = new_id()
    await allocate_and_upload(http, flow["id"], [b"first"], [object_id])
    assert await status_of(http, flow["id"], object_id, "[0:0_1:0)") == 201
    reuse = {"object_id": object_id, "timerange": "[1:0_2:0)", "ts_offset": "1:0"}
    assert (await post(http, flow["id"], reuse))[0] == 201

    status, _, _ = await send_json(http, "DELETE", f"/flows/{flow['id']}/segments")
    assert status == 204
    await eventually(lambda: gone_from_s3(tams_stack, object_id), f"{object_id} collected")
    media = await stack_media_settings(http)
    async with stack_collector(tams_stack, media) as collector:
        await collector.delete_bytes(time.time_ns() + (media.upload_window_s + 1) * 10**9)

    put_urls: list[dict[str, str]] = []

    async def allocated_again() -> bool:
        request = {"object_ids": [object_id]}
        async with http.post(f"/flows/{flow['id']}/storage", json=request) as resp:
            if resp.status != 201:
                return False
            put_urls.append((await resp.json())["media_objects"][0]["put_url"])
            return True

    await eventually(allocated_again, f"{object_id} allocated again")
    # Uploaded: registered, and the new bytes are what is stored.
    async with aiohttp.ClientSession() as anonymous:
        headers = {"Content-Type": put_urls[0]["content-type"]}
        async with anonymous.put(put_urls[0]["url"], data=b"second", headers=headers) as resp:
            assert resp.status == 200
    assert await status_of(http, flow["id"], object_id, "[5:0_6:0)") == 201
    assert await stored_bytes(tams_stack, object_id) == b"second"


async def test_deleting_by_object_id_keeps_objects_other_flows_use(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    flow, object_ids, _ = await flow_with_segments(http, 6, objects=2)  # a, b, a, b, a, b
    other = video_flow()
    await put_flow(http, other)
    status, _ = await post(
        http, other["id"], {"object_id": object_ids[0], "timerange": "[0:0_1:0)"}
    )
    assert status == 201
    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        status, _, _ = await send_json(
            http, "DELETE", f"/flows/{flow['id']}/segments?object_id={object_ids[0]}"
        )
        assert status == 204
        deleted = of_flow(flow["id"], "flows/segments_deleted")
        events = deleted(await reader.until(lambda evs: len(deleted(evs)) >= 3))
    # Sparse segments: one event each, so no event covers a segment that stays.
    assert [e["event"]["timerange"] for e in events] == ["[0:0_1:0)", "[2:0_3:0)", "[4:0_5:0)"]
    assert await timeranges(http, flow["id"]) == ["[1:0_2:0)", "[3:0_4:0)", "[5:0_6:0)"]
    shared = await get_json(http, f"/objects/{object_ids[0]}")
    assert shared["referenced_by_flows"] == [other["id"]]
    assert await stored_bytes(tams_stack, object_ids[0]) == b"media 0"


async def test_delete_rules(http: aiohttp.ClientSession, spec: SpecValidator) -> None:
    flow, _, _ = await flow_with_segments(http, 2)
    base = f"/flows/{flow['id']}/segments"
    for query in ("?timerange=nonsense", "?timerange=1:00_2:0", "?object_id="):
        status, body, _ = await send_json(http, "DELETE", base + query)
        assert status == 400, query
        spec.validate(body, "error.json")
    status, body, _ = await send_json(http, "DELETE", f"/flows/{new_id()}/segments")
    assert status == 404
    spec.validate(body, "error.json")
    async with http.put(f"/flows/{flow['id']}/read_only", json=True) as resp:
        assert resp.status == 204
    for path in (base, f"/flows/{flow['id']}"):
        status, body, _ = await send_json(http, "DELETE", path)
        assert status == 403, path
        spec.validate(body, "error.json")
    assert len(await timeranges(http, flow["id"])) == 2


async def test_a_large_segment_delete_runs_in_chunks_to_done(
    http: aiohttp.ClientSession, tams_stack: Stack, spec: SpecValidator
) -> None:
    count = 3 * TEST_DELETE_CHUNK + 3
    assert count > TEST_SYNC_DELETE_LIMIT
    flow, object_ids, _ = await flow_with_segments(http, count, objects=4)
    other = video_flow()
    await put_flow(http, other)
    status, _ = await post(
        http, other["id"], {"object_id": object_ids[0], "timerange": "[0:0_1:0)"}
    )
    assert status == 201
    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        status, body, headers = await send_json(
            http, "DELETE", f"/flows/{flow['id']}/segments?timerange=[0:0_100:0)"
        )
        assert status == 202, body
        spec.validate(body, "deletion-request.json")
        assert body["flow_id"] == flow["id"] and body["delete_flow"] is False
        assert body["status"] == "created"
        assert body["timerange_to_delete"] == body["timerange_remaining"] == "[0:0_100:0)"
        location = headers["Location"]
        assert location.endswith(f"/flow-delete-requests/{body['id']}")
        states = await follow(http, location, spec)
        deleted = of_flow(flow["id"], "flows/segments_deleted")
        chunks = -(-count // TEST_DELETE_CHUNK)
        events = deleted(await reader.until(lambda evs: len(deleted(evs)) >= chunks))

    final = states[-1]
    assert final["timerange_remaining"] == "()" and final["status"] == "done"
    assert final["updated"] >= final["created"] and final["expiry"] > final["updated"]
    # timerange_remaining only ever shrank, from what was asked to nothing.
    remaining = [TimeRange.parse(s["timerange_remaining"]) for s in [body, *states]]
    assert all(a.contains(b) for a, b in itertools.pairwise(remaining))
    # One event per chunk, in time order, together covering every segment once.
    ranges = [e["event"]["timerange"] for e in events]
    expected = []
    for start in range(0, count, TEST_DELETE_CHUNK):
        end = min(start + TEST_DELETE_CHUNK, count)
        expected.append(f"[{start}:0_{end}:0)")
    assert ranges == expected
    assert await timeranges(http, flow["id"]) == []
    still = await get_json(http, f"/flows/{flow['id']}?include_timerange=true")
    assert still["timerange"] == "()"  # the flow itself stays
    # The shared object keeps its bytes; the others are collected.
    assert (await get_json(http, f"/objects/{object_ids[0]}"))["referenced_by_flows"] == [
        other["id"]
    ]
    assert await stored_bytes(tams_stack, object_ids[0]) == b"media 0"
    for object_id in object_ids[1:]:
        await eventually(lambda o=object_id: gone_from_s3(tams_stack, o), f"{object_id} deleted")


async def test_a_flow_made_read_only_stops_its_running_deletion(
    http: aiohttp.ClientSession, tams_stack: Stack, spec: SpecValidator
) -> None:
    count = TEST_SYNC_DELETE_LIMIT + 5
    flow, _, _ = await flow_with_segments(http, count, objects=3)
    # Accepted while the segments service, which does the work, is held back; then the
    # flow is protected before any segment went.
    with paused(tams_stack, "segments"):
        status, body, headers = await send_json(http, "DELETE", f"/flows/{flow['id']}")
        assert status == 202, body
        status, body, _ = await send_json(http, "PUT", f"/flows/{flow['id']}/read_only", True)
        assert status == 204, body

    async def stopped() -> bool:
        request = await get_json(http, headers["Location"])
        spec.validate(request, "deletion-request.json")
        return bool(request["status"] == "error")

    await eventually(stopped, "the deletion request to stop")
    request = await get_json(http, headers["Location"])
    assert "read-only" in request["error"]["summary"]
    assert request["timerange_remaining"] == f"[0:0_{count}:0)"
    # Nothing of the read-only flow went.
    assert (await get_json(http, f"/flows/{flow['id']}"))["read_only"] is True
    assert len(await timeranges(http, flow["id"])) == count


async def test_a_large_flow_delete_ends_with_the_flow_and_its_source(
    http: aiohttp.ClientSession, tams_stack: Stack, spec: SpecValidator
) -> None:
    count = TEST_SYNC_DELETE_LIMIT + 5
    flow, object_ids, _ = await flow_with_segments(http, count, objects=3)
    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        # The catalog accepts the deletion; the segments service does the work: hold it back
        # a moment to see the request before any step ran.
        with paused(tams_stack, "segments"):
            status, body, headers = await send_json(http, "DELETE", f"/flows/{flow['id']}")
            assert status == 202, body
            spec.validate(body, "deletion-request.json")
            assert body["delete_flow"] is True
            assert body["timerange_to_delete"] == f"[0:0_{count}:0)"
            pending = await get_json(http, headers["Location"])
            assert pending["status"] == "created"
            assert pending["timerange_remaining"] == pending["timerange_to_delete"]
            # The flow is still served while it is being deleted.
            assert (await get_json(http, f"/flows/{flow['id']}"))["id"] == flow["id"]
            assert len(await timeranges(http, flow["id"])) == count
        states = await follow(http, headers["Location"], spec)

        def done(evs: list[dict[str, Any]]) -> bool:
            # Both: the source's event is on another partition and may be read first.
            seen = {(e["key"], e["event_type"]) for e in evs}
            return {
                (flow["source_id"], "sources/deleted"),
                (flow["id"], "flows/deleted"),
            } <= seen

        events = await reader.until(done)
    assert states[-1]["status"] == "done"
    await get_json(http, f"/flows/{flow['id']}", status=404)
    await get_json(http, f"/sources/{flow['source_id']}", status=404)
    kinds = [e["event_type"] for e in events if e["key"] == flow["id"]]
    assert kinds[-1] == "flows/deleted"
    assert set(kinds[:-1]) == {"flows/segments_deleted"}
    for object_id in object_ids:
        await eventually(lambda o=object_id: gone_from_s3(tams_stack, o), f"{object_id} deleted")


async def test_flow_delete_requests_are_listed_and_paged(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    created = []
    for _ in range(3):
        flow, _, _ = await flow_with_segments(http, TEST_SYNC_DELETE_LIMIT + 1, objects=1)
        status, body, _ = await send_json(http, "DELETE", f"/flows/{flow['id']}/segments")
        assert status == 202
        created.append(body["id"])
        await asyncio.sleep(0.002)  # distinct creation times (microsecond stamps)
    listed = await list_all(http, "/flow-delete-requests?limit=2")
    spec.validate_list(listed, "deletion-request.json")
    ids = [r["id"] for r in listed]
    assert [i for i in ids if i in created] == created[::-1]  # newest first
    oldest_first = [
        r["id"] for r in await list_all(http, "/flow-delete-requests?reverse_order=true")
    ]
    assert [i for i in oldest_first if i in created] == created
    by_expiry = await list_all(http, "/flow-delete-requests?sort_by=expiry&limit=1")
    expiries = [r["expiry"] for r in by_expiry]
    assert expiries == sorted(expiries, reverse=True)
    async with http.get("/flow-delete-requests?limit=1") as resp:
        assert resp.headers["X-Paging-Limit"] == "1"
        assert resp.headers["X-Paging-Count"] == "1"
        assert resp.headers["X-Paging-Reverse-Order"] == "false"
        assert "X-Paging-NextKey" in resp.headers and "Link" in resp.headers
        expected = {
            k: v for k, v in resp.headers.items() if k.startswith("X-Paging") or k == "Link"
        }
    async with http.head("/flow-delete-requests?limit=1") as resp:
        assert resp.status == 200 and await resp.read() == b""
        assert {k: v for k, v in resp.headers.items() if k in expected} == expected
    for query in ("sort_by=label", "page=garbage!", "limit=0"):
        status, body, _ = await send_json(http, "GET", f"/flow-delete-requests?{query}")
        assert status == 400, query
    status, body, _ = await send_json(http, "GET", f"/flow-delete-requests/{new_id()}")
    assert status == 404
    spec.validate(body, "error.json")
    one = await get_json(http, f"/flow-delete-requests/{created[0]}")
    spec.validate(one, "deletion-request.json")


async def test_a_stalled_deletion_request_is_restarted(
    http: aiohttp.ClientSession, tams_stack: Stack, spec: SpecValidator
) -> None:
    """A request whose step command was lost (a local broker forgets its topics on restart)
    is found in the store by the segments service and run to the end."""
    flow, _, _ = await flow_with_segments(http, TEST_SYNC_DELETE_LIMIT + 2, objects=2)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    record = deletion.new_request(
        flow["id"],
        TimeRange.parse("[5:0_"),
        delete_flow=False,
        object_id=None,
        principal=None,
        now=long_ago,
        retention_s=3600 * 24,
    )
    # Made after the flow, last updated an hour ago.
    record = replace(record, doc={**record.doc, "created": deletion.stamp(datetime.now(UTC))})
    async with stack_store(tams_stack) as store:
        await store.write(lambda tx: tx.put_deletion_request(record))
    states = await follow(http, f"/flow-delete-requests/{record.id}", spec)
    assert states[-1]["status"] == "done"
    assert await timeranges(http, flow["id"]) == [f"[{i}:0_{i + 1}:0)" for i in range(5)]


async def test_a_request_stalled_across_a_delete_and_re_create_leaves_the_new_flow_alone(
    http: aiohttp.ClientSession, tams_stack: Stack, spec: SpecValidator
) -> None:
    """A request made for a flow that was then deleted, and whose id was used again for a
    new flow, ends when it is resumed, deleting nothing of the new flow."""
    count = TEST_SYNC_DELETE_LIMIT + 2
    flow, _, _ = await flow_with_segments(http, count, objects=2)
    # Made (and last updated) an hour ago: before this flow was created.
    record = deletion.new_request(
        flow["id"],
        TimeRange.eternity(),
        delete_flow=True,
        object_id=None,
        principal=None,
        now=datetime.now(UTC) - timedelta(hours=1),
        retention_s=3600 * 24,
    )
    async with stack_store(tams_stack) as store:
        await store.write(lambda tx: tx.put_deletion_request(record))
    states = await follow(http, f"/flow-delete-requests/{record.id}", spec)
    assert states[-1]["status"] == "done"
    assert len(await timeranges(http, flow["id"])) == count
    await get_json(http, f"/flows/{flow['id']}")
