"""A flow's events reach the public topic in the order of the changes, though two services
make them: the segments service announces segments, the catalog the flow. The catalog's events
are published by the segments service (`events.relay`), in order with its own."""

from __future__ import annotations

import os
import signal

import aiohttp

from tams_stack.stack import Stack

from .helpers import EventReader, allocate_and_upload, post, put_flow, video_flow
from .standalone import standalone


async def test_a_flows_events_come_in_the_order_of_its_changes_though_two_services_make_them(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    """The segments service stops with a segment event it has not published. Meanwhile the
    catalog deletes the flow and creates it again with the same id: neither the deletion
    nor the new flow may overtake the segment event, nor the new flow the deletion."""
    async with standalone(tams_stack, ("catalog", "segments", "gateway")) as stack:
        topic = f"{stack.env['TAMS_KAFKA_TOPIC_PREFIX']}.events"
        async with (
            EventReader(stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"], topic) as events,
            aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as http,
        ):
            flow = video_flow()
            await put_flow(http, flow)
            (object_id,) = await allocate_and_upload(http, flow["id"], [b"media" * 100])
            status, body = await post(
                http, flow["id"], {"object_id": object_id, "timerange": "[0:0_1:0)"}
            )
            assert status == 201, body

            segments = stack.services["segments"].process.pid
            os.kill(segments, signal.SIGSTOP)
            try:
                # A small flow: deleted at once (204), then created again (201).
                async with http.delete(f"/flows/{flow['id']}") as resp:
                    assert resp.status == 204, await resp.text()
                await put_flow(http, flow)
            finally:
                os.kill(segments, signal.SIGCONT)

            def created_twice(evs: list[dict[str, object]]) -> bool:
                return [e["event_type"] for e in evs if e["key"] == flow["id"]].count(
                    "flows/created"
                ) == 2

            ordered = [
                e["event_type"]
                for e in await events.until(created_twice, timeout=20)
                if e["key"] == flow["id"]
            ]
            assert ordered == [
                "flows/created",
                "flows/segments_added",
                "flows/segments_deleted",
                "flows/deleted",
                "flows/created",
            ]
