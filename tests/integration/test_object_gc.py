"""Garbage collection of objects allocated by /storage but never registered.

The timeout is at least five minutes (ADR 0044), so the suite does not wait for it: it runs
the segments service's own collector from the test process, against the stack's real store
and S3, with its clock set past the timeout.
"""

from __future__ import annotations

import time

import aiohttp
import pytest
from pydantic import ValidationError

from tams_runtime.settings import MediaSettings
from tams_stack.stack import Stack

from .helpers import (
    allocate_and_upload,
    eventually,
    get_json,
    new_id,
    post,
    put_flow,
    stack_collector,
    stack_media_settings,
    stored_bytes,
    video_flow,
)

NS = 1_000_000_000


def test_a_min_object_timeout_under_five_minutes_is_refused() -> None:
    with pytest.raises(ValidationError):
        MediaSettings(min_object_timeout_s=299)


async def test_unregistered_objects_are_collected_after_the_timeout(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    media = await stack_media_settings(http)
    timeout_s, grace_s = media.min_object_timeout_s, media.object_gc_grace_s
    assert timeout_s >= 300

    flow = video_flow()
    await put_flow(http, flow)
    kept, dropped = await allocate_and_upload(http, flow["id"], [b"registered", b"abandoned"])
    assert (await post(http, flow["id"], {"object_id": kept, "timerange": "[0:0_1:0)"}))[0] == 201

    async with stack_collector(tams_stack, media) as collector:
        now = time.time_ns()
        # Within the timeout (plus grace) nothing allocated just now is touched.
        early = await collector.collect_expired_allocations(now + timeout_s * NS)
        assert dropped not in early
        later = now + (timeout_s + grace_s + 1) * NS
        collected = await collector.collect_expired_allocations(later)
        assert dropped in collected and kept not in collected
        assert await collector.delete_bytes(later) >= 1

    assert await stored_bytes(tams_stack, dropped) is None
    assert await stored_bytes(tams_stack, kept) == b"registered"
    # Forgotten: a late registration fails as for any unknown object.
    status, error = await post(http, flow["id"], {"object_id": dropped, "timerange": "[1:0_2:0)"})
    assert status == 400 and "unknown" in error["summary"]
    await get_json(http, f"/objects/{kept}")


async def test_bytes_uploaded_to_a_deleted_objects_put_url_are_swept(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    """A put_url stays valid after its object was registered and deleted: bytes uploaded to
    it then are deleted again once no put_url can upload any more, and until then the id is
    not allocated again (its registration would take the stray bytes for an upload)."""
    media = await stack_media_settings(http)
    flow = video_flow()
    await put_flow(http, flow)
    object_id = new_id()
    async with http.post(f"/flows/{flow['id']}/storage", json={"object_ids": [object_id]}) as r:
        assert r.status == 201
        put_url = (await r.json())["media_objects"][0]["put_url"]

    async def upload(payload: bytes) -> None:
        headers = {"Content-Type": put_url["content-type"]}
        async with (
            aiohttp.ClientSession() as anonymous,
            anonymous.put(put_url["url"], data=payload, headers=headers) as resp,
        ):
            assert resp.status == 200

    await upload(b"first")
    assert (await post(http, flow["id"], {"object_id": object_id, "timerange": "[0:0_1:0)"}))[
        0
    ] == 201
    async with http.delete(f"/flows/{flow['id']}/segments") as resp:
        assert resp.status == 204

    async def deleted() -> bool:
        return await stored_bytes(tams_stack, object_id) is None

    await eventually(deleted, "the object's bytes deleted")
    await upload(b"late")  # the URL is still valid
    assert await stored_bytes(tams_stack, object_id) == b"late"
    async with http.post(f"/flows/{flow['id']}/storage", json={"object_ids": [object_id]}) as r:
        assert r.status == 400  # still in use: its bytes are not settled yet

    async with stack_collector(tams_stack, media) as collector:
        # Once no put_url can upload any more, the sweep deletes what arrived late.
        later = time.time_ns() + (media.upload_window_s + 1) * NS
        assert await collector.delete_bytes(later) >= 1
    assert await stored_bytes(tams_stack, object_id) is None
    async with http.post(f"/flows/{flow['id']}/storage", json={"object_ids": [object_id]}) as r:
        assert r.status == 201, await r.text()
