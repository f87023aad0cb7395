"""Benchmark: a page of 100 segments from a flow holding 1,000,000 segments, through the gateway.

    uv run python bench/segments_read.py                 # 1,000,000 segments, fresh stack
    uv run python bench/segments_read.py --segments 100000

The flow and its segments are loaded straight into the store through the port (this measures
reads; registration has its own benchmark), with one allocated and uploaded object per 1,000
segments reused by the rest, as a loop recorder would. Then 32 clients read pages of 100
segments (with presigned get_urls) at the start, the middle and the end of the flow, and the
script prints p50/p90/p99 per position and the end/start ratio: paced (the clients together
send --rate pages/s) and closed-loop (maximum throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from tams_store.port import ObjectAllocation, ObjectRecord, SegmentRecord

sys.path.insert(0, str(Path(__file__).parent))
from catalog import run_load

SEGMENT_NS = 2_000_000_000  # 2 s segments
PAGE = 100


def ts(ns: int) -> str:
    return f"{ns // 1_000_000_000}:{ns % 1_000_000_000}"


async def load(store: Any, flow: dict[str, Any], count: int, s3_storage_id: str) -> None:
    objects = [str(uuid.uuid4()) for _ in range(max(1, count // 1000))]

    def first(tx: Any) -> None:
        tx.allocate_objects(
            [ObjectAllocation(o, flow["id"], s3_storage_id, "video/mp2t", 0) for o in objects]
        )

    await store.write(first)
    batch = 10_000
    for offset in range(0, count, batch):

        def work(tx: Any, offset: int = offset) -> None:
            records = []
            for n in range(offset, min(offset + batch, count)):
                start, end = n * SEGMENT_NS, (n + 1) * SEGMENT_NS
                records.append(
                    SegmentRecord(
                        start, end, objects[n % len(objects)], f"[{ts(start)}_{ts(end)})", {}, 0
                    )
                )
            registered = [
                ObjectRecord(o, flow["id"], s3_storage_id, "video/mp2t", True, flow["id"], {})
                for o in objects
            ]
            tx.add_segments(flow["id"], records, registered, "2026-11-24T00:00:00.000000Z")

        await store.write(work)


async def read_pages(
    url: str,
    flow_id: str,
    count: int,
    requests: int,
    rate: float,
    headers: dict[str, str],
) -> list[dict[str, Any]]:
    positions = {"start": 0, "middle": count // 2, "end": count - PAGE}
    results = []
    async with aiohttp.ClientSession(url, headers=headers) as http:
        for name, index in positions.items():
            query = f"timerange=[{ts(index * SEGMENT_NS)}_&limit={PAGE}"
            path = f"/flows/{flow_id}/segments?{query}"
            async with http.get(path) as resp:
                page = await resp.json()
                assert resp.status == 200 and len(page) == PAGE, (resp.status, len(page))
                assert page[0]["get_urls"], page[0]

            async def get(_: int, path: str = path) -> int:
                async with http.get(path) as resp:
                    await resp.read()
                    return resp.status

            results.append(
                await run_load(f"page at {name} (paced)", get, 200, total=requests, rate=rate)
            )
        for name, index in positions.items():
            query = f"timerange=[{ts(index * SEGMENT_NS)}_&limit={PAGE}"
            path = f"/flows/{flow_id}/segments?{query}"

            async def get_closed(_: int, path: str = path) -> int:
                async with http.get(path) as resp:
                    await resp.read()
                    return resp.status

            results.append(
                await run_load(
                    f"page at {name} (closed)", get_closed, 200, total=requests, rate=None
                )
            )
    ratio = results[2]["p99_ms"] / results[0]["p99_ms"]
    print(f"end/start p99 ratio {ratio:.2f}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000, help="page reads per position")
    parser.add_argument("--rate", type=float, default=100.0, help="paced pages/s")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from tams_runtime.settings import S3Settings
    from tams_stack.stack import Stack
    from tams_store.sqlite import SqliteStore

    data_dir = Path(tempfile.mkdtemp(prefix="tams-bench-"))
    stack = Stack(data_dir)
    stack.start_infrastructure()
    try:
        asyncio.run(stack.start_services(("catalog", "segments", "gateway")))
        flow_id = str(uuid.uuid4())
        flow = {
            "id": flow_id,
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

        async def setup() -> None:
            async with (
                aiohttp.ClientSession(stack.gateway_url, headers=stack.client_headers()) as http,
                http.put(f"/flows/{flow_id}", json=flow) as resp,
            ):
                assert resp.status == 201
            store = SqliteStore(data_dir / "tams.db")
            await store.open()
            started = time.perf_counter()
            await load(store, flow, args.segments, S3Settings().storage_id)
            print(f"loaded {args.segments} segments in {time.perf_counter() - started:.1f}s")
            await store.close()

        asyncio.run(setup())
        results = asyncio.run(
            read_pages(
                stack.gateway_url,
                flow_id,
                args.segments,
                args.requests,
                args.rate,
                stack.client_headers(),
            )
        )
    finally:
        stack.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
