"""The public event stream: the example subscriber sees an ingest, payloads follow the spec."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tams_stack.stack import Stack
from tams_stack.testing import SpecValidator

from .helpers import EventReader, put_flow, video_flow
from .test_segments import allocate_and_upload

ROOT = Path(__file__).resolve().parents[2]


async def read_line(stream: asyncio.StreamReader) -> str:
    line = await stream.readline()
    if not line:
        raise EOFError("the subscriber exited")
    return line.decode().rstrip("\n")


async def test_the_example_subscriber_prints_the_segments_of_an_ingest(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    subscriber = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "subscriber.py"),
        "--bootstrap-servers",
        tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"],
        "--flow-id",
        flow["id"],
        "--from-beginning",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert subscriber.stdout is not None
    try:
        async with asyncio.timeout(30):
            while not (await read_line(subscriber.stdout)).startswith("listening on"):
                pass
            object_ids = await allocate_and_upload(http, flow["id"], [b"a" * 100, b"b" * 100])
            segments = [
                {"object_id": oid, "timerange": f"[{i}:0_{i + 1}:0)"}
                for i, oid in enumerate(object_ids)
            ]
            async with http.post(f"/flows/{flow['id']}/segments", json=segments) as resp:
                assert resp.status == 201
            printed = [await read_line(subscriber.stdout) for _ in segments]
    finally:
        subscriber.terminate()
        await subscriber.wait()
    assert printed == [f"{flow['id']} {s['timerange']} {s['object_id']}" for s in segments]


async def test_every_published_payload_follows_the_official_webhook_schemas(
    http: aiohttp.ClientSession, tams_stack: Stack, spec: SpecValidator
) -> None:
    flow = video_flow()
    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        await put_flow(http, flow)
        async with http.put(f"/sources/{flow['source_id']}/label", json="studio") as resp:
            assert resp.status == 204
        (object_id,) = await allocate_and_upload(http, flow["id"], [b"x" * 10])
        segment = {"object_id": object_id, "timerange": "[0:0_1:0)"}
        async with http.post(f"/flows/{flow['id']}/segments", json=segment) as resp:
            assert resp.status == 201
        async with http.delete(f"/flows/{flow['id']}") as resp:
            assert resp.status in (202, 204)
        mine = {flow["id"], flow["source_id"]}

        def relevant(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e for e in events if e["key"] in mine]

        events = relevant(await reader.until(lambda evs: len(relevant(evs)) >= 7))
    assert {e["event_type"] for e in events} == {
        "flows/created",
        "flows/segments_added",
        "flows/segments_deleted",
        "flows/deleted",
        "sources/created",
        "sources/updated",
        "sources/deleted",
    }
    for event in events:
        payload = {k: event[k] for k in ("event_timestamp", "event_type", "event")}
        spec.validate_event(payload)
        assert event["headers"]["schema_version"] == "1"
        assert event["headers"]["event_type"] == event["event_type"]
