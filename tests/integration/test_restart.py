"""The stack keeps its data across a restart: everything acknowledged is in the store.

The local broker keeps topics in memory and forgets them when it stops, so this also shows
that start-up does not depend on old Kafka data.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import aiohttp

from tams_stack.stack import Stack

from .helpers import put_flow, video_flow


async def test_data_survives_a_full_restart() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="tams-restart-"))
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
