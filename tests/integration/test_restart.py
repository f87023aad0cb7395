"""The stack keeps its data across a restart: everything acknowledged is in the store.

The local broker keeps topics in memory and forgets them when it stops, so this also shows
that start-up does not depend on old Kafka data.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tams_schema.timerange import TimeRange
from tams_stack.stack import Stack

from .helpers import put_flow, video_flow
from .receivers import receiving


async def test_data_survives_a_full_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "stack"
    flow = video_flow(tags={"kept": "yes"})

    stack = Stack(data_dir, extra_env={"TAMS_KAFKA_SESSION_TIMEOUT_MS": "2000"})
    try:
        stack.start_infrastructure()
        await stack.start_services(("catalog", "gateway"))
        async with aiohttp.ClientSession(stack.gateway_url, headers=stack.client_headers()) as http:
            await put_flow(http, flow)
    finally:
        stack.stop()

    again = Stack(data_dir, extra_env={"TAMS_KAFKA_SESSION_TIMEOUT_MS": "2000"})
    try:
        again.start_infrastructure()
        await again.start_services(("catalog", "gateway"))
        async with aiohttp.ClientSession(again.gateway_url, headers=again.client_headers()) as http:
            async with http.get(f"/flows/{flow['id']}") as resp:
                assert resp.status == 200
                assert (await resp.json())["tags"] == {"kept": "yes"}
            async with http.put(f"/flows/{flow['id']}/label", json="after restart") as resp:
                assert resp.status == 204
            async with http.get(f"/flows/{flow['id']}/label") as resp:
                assert await resp.json() == "after restart"
    finally:
        again.stop()


async def test_a_graceful_stop_mid_deletion_loses_no_event(tmp_path: Path) -> None:
    """The local broker keeps events in memory: stopped with Ctrl-C while a deletion sends
    them, the stack must hand every event on (to the webhooks service's queue) first. The
    deletion finishes during the stop or resumes after the restart, and either way the
    receiver gets all of it."""
    data_dir = tmp_path / "stack"
    env = {
        "TAMS_KAFKA_SESSION_TIMEOUT_MS": "2000",
        # A deletion of many small steps, each its own events.
        "TAMS_MEDIA_SYNC_DELETE_LIMIT": "5",
        "TAMS_MEDIA_DELETE_CHUNK_SEGMENTS": "2",
    }
    flow = video_flow()
    segments = [
        {
            "object_id": f"cdn-{flow['id']}-{i}",
            "timerange": f"[{i}:0_{i + 1}:0)",
            "get_urls": [{"url": f"https://cdn.example/{i}.ts", "label": "cdn"}],
        }
        for i in range(300)
    ]
    deleted: set[int] = set()

    def covered() -> bool:
        for request in receiver.delivered(lambda r: r.event_type == "flows/segments_deleted"):
            tr = TimeRange.parse(request.event["timerange"])
            assert tr.start is not None and tr.end is not None
            deleted.update(range(tr.start // 10**9, -(-tr.end // 10**9)))
        return deleted >= set(range(300))

    async with receiving() as receiver:
        stack = Stack(data_dir, extra_env=env)
        try:
            stack.start_infrastructure()
            await stack.start_services()
            async with aiohttp.ClientSession(
                stack.gateway_url, headers=stack.client_headers()
            ) as http:
                await put_flow(http, flow)
                hook = {"url": receiver.url, "events": ["flows/segments_deleted"]}
                async with http.post("/service/webhooks", json=hook) as resp:
                    assert resp.status == 201, await resp.text()
                async with http.post(f"/flows/{flow['id']}/segments", json=segments) as resp:
                    assert resp.status == 201, await resp.text()
                async with http.delete(f"/flows/{flow['id']}/segments") as resp:
                    assert resp.status == 202
                # Stopped while the steps run and their events are on their way.
                await receiver.wait_for(3)
        finally:
            stack.stop()

        again = Stack(data_dir, extra_env=env)
        try:
            again.start_infrastructure()
            await again.start_services()
            await receiver.wait_until(covered, timeout=60)
        finally:
            again.stop()
