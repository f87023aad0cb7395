"""Benchmark: registering segments through the gateway (single POSTs and bulk POSTs of 100).

    uv run python bench/segments_write.py [--sustain SECONDS [--rate POSTS_PER_S]]

A pool of objects is allocated, uploaded and registered once; the measured POSTs then reuse
those objects (as a loop recorder or an edit would), so the figures are about registration,
not about uploading bytes. Two loads, on a fresh stack of all five services:
  single  32 clients, each POSTing one segment at a time to its own flow (closed loop);
  bulk    8 clients, each POSTing arrays of 100 segments to its own flow (closed loop).
Prints segments/s and request latency percentiles for each. The measured POSTs go through
a lean HTTP client (`lean_http.py`), so the load generator leaves the stack the CPU that
aiohttp's client would take on the same cores. `--sustain` first runs the
single load for that many seconds and prints each 10-second window, with the broker's CPU
share, to show whether a rate holds; with `--rate` that load is paced at that many POSTs/s
instead of closed-loop, as independent recorders would send (see `sustain`). `--webhook`
first registers one webhook, for an event type this load never causes, so the webhooks
service reads every event as it comes (with no webhook it reads the events topic once a
second).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from catalog import CLIENTS, await_turn, cpu_seconds, report, run_load
from lean_http import LeanClient

SEGMENT_NS = 1_000_000_000


def tr(n: int) -> str:
    return f"[{n}:0_{n + 1}:0)"


def reuse(objects: list[str], n: int, slot: int) -> dict[str, str]:
    """A segment at second `slot` reusing object `n` of the pool (`prepare_objects`
    registered object i at second i): its `ts_offset` maps the segment onto the object's
    own timerange, as the spec requires of a reused object."""
    index = n % len(objects)
    return {"object_id": objects[index], "timerange": tr(slot), "ts_offset": f"{slot - index}:0"}


def video_flow() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "source_id": str(uuid.uuid4()),
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {
            "frame_width": 1920,
            "frame_height": 1080,
            "frame_rate": {"numerator": 50},
        },
    }


async def prepare_objects(http: aiohttp.ClientSession, count: int) -> list[str]:
    """Allocate, upload and register `count` objects on a warm-up flow."""
    flow = video_flow()
    async with http.put(f"/flows/{flow['id']}", json=flow) as resp:
        assert resp.status == 201
    async with http.post(f"/flows/{flow['id']}/storage", json={"limit": count}) as resp:
        objects = (await resp.json())["media_objects"]
    async with aiohttp.ClientSession() as anonymous:
        for item in objects:
            url = item["put_url"]
            async with anonymous.put(
                url["url"], data=b"\x47" * 188, headers={"Content-Type": url["content-type"]}
            ) as resp:
                assert resp.status == 200
    body = [{"object_id": o["object_id"], "timerange": tr(i)} for i, o in enumerate(objects)]
    async with http.post(f"/flows/{flow['id']}/segments", json=body) as resp:
        assert resp.status == 201, await resp.text()
    return [o["object_id"] for o in objects]


async def sustain(
    seconds: float,
    post: Callable[[int], Awaitable[int]],
    broker_pid: int | None,
    rate: float | None = None,
) -> list[dict[str, Any]]:
    """Single POSTs for `seconds`, closed-loop or paced at `rate`/s; one row per 10 s window.

    Paced, each client keeps its own timetable (clients evenly out of phase). A client behind
    its timetable sends at once, and the latency counts from when the POST was due, not from
    when it went: a stall cannot hide by holding back the POSTs that would have met it
    (coordinated omission).
    """
    window_s = 10.0
    started = time.perf_counter()
    windows: dict[int, list[float]] = {}
    errors = 0
    counter = itertools.count()
    interval = CLIENTS / rate if rate else 0.0

    async def client(offset: int) -> None:
        nonlocal errors
        due = started + offset * interval / CLIENTS
        while (now := time.perf_counter()) - started < seconds:
            sent = now
            if interval:
                sent = await await_turn(due)
                due += interval
            if await post(next(counter)) != 201:
                errors += 1
            done = time.perf_counter()
            window = int((done - started) // window_s)
            windows.setdefault(window, []).append(done - sent)

    async def watch_broker() -> list[float]:
        shares = []
        last = broker_cpu_seconds(broker_pid)
        for _ in range(int(seconds // window_s)):
            await asyncio.sleep(window_s)
            now = broker_cpu_seconds(broker_pid)
            shares.append((now - last) / window_s * 100)
            last = now
        return shares

    shares, *_ = await asyncio.gather(watch_broker(), *(client(i) for i in range(CLIENTS)))
    rows = []
    for window in range(int(seconds // window_s)):
        latencies = sorted(windows.get(window, []))
        if not latencies:
            continue
        row = report(
            f"sustained {window * window_s:4.0f}-{(window + 1) * window_s:.0f} s",
            latencies,
            window_s,
            0,
        )
        row["broker_cpu_percent"] = round(shares[window]) if window < len(shares) else None
        print(f"    broker CPU {row['broker_cpu_percent']}%", flush=True)
        rows.append(row)
    if errors:
        print(f"sustained: {errors} errors", flush=True)
    return rows


def broker_cpu_seconds(pid: int | None) -> float:
    return cpu_seconds({"broker": pid}).get("broker", 0.0) if pid is not None else 0.0


async def bench(
    url: str,
    singles: int,
    bulks: int,
    headers: dict[str, str],
    sustain_s: float = 0.0,
    broker_pid: int | None = None,
    webhook: bool = False,
    rate: float | None = None,
) -> list[dict[str, Any]]:
    results = []
    async with aiohttp.ClientSession(
        url, connector=aiohttp.TCPConnector(limit=64), headers=headers
    ) as http:
        if webhook:
            body = {"url": "http://127.0.0.1:9/never-called", "events": ["flows/deleted"]}
            async with http.post("/service/webhooks", json=body) as resp:
                assert resp.status == 201, await resp.text()
        objects = await prepare_objects(http, 100)
        flows = [video_flow() for _ in range(32)]
        for flow in flows:
            async with http.put(f"/flows/{flow['id']}", json=flow) as resp:
                assert resp.status == 201
        next_slot = {f["id"]: 0 for f in flows}
    # The measured load goes through a lean client: on two cores, aiohttp's client would
    # take CPU the stack needs (bench/lean_http.py).
    lean = LeanClient(url, headers)
    try:

        async def single(n: int) -> int:
            flow_id = flows[n % len(flows)]["id"]
            slot = next_slot[flow_id]
            next_slot[flow_id] = slot + 1
            segment = reuse(objects, n, slot)
            status, _ = await lean.request("POST", f"/flows/{flow_id}/segments", segment)
            return status

        if sustain_s:
            results += await sustain(sustain_s, single, broker_pid, rate)
        row = await run_load("single POST (closed)", single, 201, total=singles, rate=None)
        row["segments_per_s"] = row["throughput_per_s"]
        results.append(row)

        bulk_flows = flows[:8]

        async def bulk(n: int) -> int:
            flow_id = bulk_flows[n % len(bulk_flows)]["id"]
            slot = next_slot[flow_id]
            next_slot[flow_id] = slot + 100
            body = [reuse(objects, slot + i, slot + i) for i in range(100)]
            status, _ = await lean.request("POST", f"/flows/{flow_id}/segments", body)
            return status

        row = await run_load("bulk POST x100 (closed)", bulk, 201, total=bulks, rate=None)
        row["segments_per_s"] = row["throughput_per_s"] * 100
        print(f"bulk: {row['segments_per_s']:.0f} segments/s", flush=True)
        results.append(row)
    finally:
        lean.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=5000)
    parser.add_argument("--bulks", type=int, default=500)
    parser.add_argument("--sustain", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--webhook", action="store_true")
    parser.add_argument("--rate", type=float, help="pace the --sustain load at this many POSTs/s")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from tams_stack.stack import Stack

    # The services run on uvloop; so does the load generator, for the same reason.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    stack = Stack(Path(tempfile.mkdtemp(prefix="tams-bench-")))
    stack.start_infrastructure()
    try:
        asyncio.run(stack.start_services())
        results = asyncio.run(
            bench(
                stack.gateway_url,
                args.singles,
                args.bulks,
                stack.client_headers(),
                args.sustain,
                stack.broker.process.pid if stack.broker else None,
                args.webhook,
                args.rate,
            )
        )
    finally:
        stack.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
