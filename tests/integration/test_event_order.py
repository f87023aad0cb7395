"""A flow's events reach the public topic in the order of the changes, though two services
make them: the segments service announces segments, the catalog the flow. A flow's deletion
is published by the segments service (`events.relay`), after every segment event it owes."""

from __future__ import annotations

import os
import signal

import aiohttp

from tams_stack.stack import Stack

from .helpers import EventReader, allocate_and_upload, post, put_flow, video_flow
from .standalone import standalone


async def test_a_deletion_is_published_after_the_segment_events_of_the_flow(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    async with standalone(tams_stack, ("catalog", "segments", "gateway")) as stack:
        topic = f"{stack.env['TAMS_KAFKA_TOPIC_PREFIX']}.events"
        async with (
            EventReader(stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"], topic) as events,
            aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as http,
        ):
            flow, witness = video_flow(), video_flow()
            await put_flow(http, flow)
            (object_id,) = await allocate_and_upload(http, flow["id"], [b"media" * 100])
            status, body = await post(
                http, flow["id"], {"object_id": object_id, "timerange": "[0:0_1:0)"}
            )
            assert status == 201, body

            # The segments service stops, with whatever it has not published yet. The
            # catalog deletes the flow (a small flow: at once) and goes on publishing.
            segments = stack.services["segments"].process.pid
            os.kill(segments, signal.SIGSTOP)
            try:
                async with http.delete(f"/flows/{flow['id']}") as resp:
                    assert resp.status == 204, await resp.text()
                await put_flow(http, witness)

                def witnessed(evs: list[dict[str, object]]) -> bool:
                    return any(e["key"] == witness["id"] for e in evs)

                seen = await events.until(witnessed)
                # The catalog has published what it had: the deletion waits for the
                # segments service, which owes events of this flow that come before it.
                assert not [
                    e for e in seen if e["key"] == flow["id"] and e["event_type"] == "flows/deleted"
                ]
            finally:
                os.kill(segments, signal.SIGCONT)

            def deleted(evs: list[dict[str, object]]) -> bool:
                return any(
                    e["key"] == flow["id"] and e["event_type"] == "flows/deleted" for e in evs
                )

            ordered = [
                e["event_type"]
                for e in await events.until(deleted, timeout=20)
                if e["key"] == flow["id"]
            ]
            assert ordered == [
                "flows/created",
                "flows/segments_added",
                "flows/segments_deleted",
                "flows/deleted",
            ]
