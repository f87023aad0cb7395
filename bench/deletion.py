"""Benchmark: deleting segments, at once (204) and through a deletion request (202).

    uv run python bench/deletion.py                       # 100,000-segment flow, fresh stack
    uv run python bench/deletion.py --segments 20000 --sync 100,1000,2000

Flows are loaded straight into the store through the port, one registered object per
segment (its bytes are not uploaded: deleting a missing S3 key succeeds like any other, so
the object garbage collection does its full work). Then:

* synchronous: `DELETE /flows/{id}/segments` on flows of each `--sync` size (at most the
  default `TAMS_MEDIA_SYNC_DELETE_LIMIT`), latency per request;
* asynchronous: `DELETE /flows/{id}` on the big flow: time to the 202, time until the
  deletion request is `done` (the flow and its source gone), segments per second, and how
  long the segments service's worker then takes to delete every object's bytes;
* a client registers segments on another flow (50 per second, one at a time), first alone,
  then while the big deletion runs: the difference is what the chunk transactions cost other
  writers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from tams_store.port import ObjectRecord, SegmentRecord

sys.path.insert(0, str(Path(__file__).parent))
from segments_write import video_flow

SEGMENT_NS = 2_000_000_000
STAMP = "2026-11-24T00:00:00.000000Z"


def ts(ns: int) -> str:
    return f"{ns // 1_000_000_000}:{ns % 1_000_000_000}"


async def load(store: Any, flow_id: str, count: int, storage_id: str) -> None:
    """`count` segments of 2 s, each with its own registered object."""
    batch = 10_000
    for offset in range(0, count, batch):

        def work(tx: Any, offset: int = offset) -> None:
            records, objects = [], []
            for n in range(offset, min(offset + batch, count)):
                start, end = n * SEGMENT_NS, (n + 1) * SEGMENT_NS
                object_id = str(uuid.uuid4())
                records.append(
                    SegmentRecord(start, end, object_id, f"[{ts(start)}_{ts(end)})", {}, 0)
                )
                objects.append(
                    ObjectRecord(
                        object_id,
                        flow_id,
                        storage_id,
                        "video/mp2t",
                        True,
                        flow_id,
                        {"timerange": f"[{ts(start)}_{ts(end)})"},
                    )
                )
            tx.add_segments(flow_id, records, objects, STAMP)

        await store.write(work)


def queued_deletions(db: Path) -> int:
    """SQLite only: how many byte deletions are still queued."""
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM media_jobs").fetchone()[0])


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "n": len(ordered),
        "p50_ms": round(at(0.5), 2),
        "p90_ms": round(at(0.9), 2),
        "p99_ms": round(at(0.99), 2),
        "max_ms": round(ordered[-1], 2),
    }


async def run(
    url: str,
    db: Path,
    args: argparse.Namespace,
    storage_id: str,
    headers: dict[str, str],
) -> dict[str, Any]:
    from tams_store.sqlite import SqliteStore

    results: dict[str, Any] = {}
    store = SqliteStore(db)
    await store.open()
    async with aiohttp.ClientSession(url, headers=headers) as http:

        async def new_flow(count: int) -> dict[str, Any]:
            flow = video_flow()
            async with http.put(f"/flows/{flow['id']}", json=flow) as resp:
                assert resp.status == 201
            await load(store, flow["id"], count, storage_id)
            return flow

        for size in args.sync:
            latencies = []
            for _ in range(args.repeat):
                flow = await new_flow(size)
                started = time.perf_counter()
                async with http.delete(f"/flows/{flow['id']}/segments") as resp:
                    assert resp.status == 204, await resp.text()
                latencies.append((time.perf_counter() - started) * 1000)
            results[f"sync delete of {size} segments"] = percentiles(latencies)
            print(
                f"sync delete of {size:>5} segments: {results[f'sync delete of {size} segments']}"
            )

        big = await new_flow(args.segments)
        other = video_flow()
        async with http.put(f"/flows/{other['id']}", json=other) as resp:
            assert resp.status == 201
        external = 0
        writes: list[float] = []
        stop = asyncio.Event()

        async def writer() -> None:
            nonlocal external
            while not stop.is_set():
                segment = {
                    "object_id": f"ext-{uuid.uuid4()}",
                    "timerange": f"[{external}:0_{external + 1}:0)",
                    "get_urls": [{"url": "https://cdn.example.com/x.ts", "label": "cdn"}],
                }
                external += 1
                started = time.perf_counter()
                async with http.post(f"/flows/{other['id']}/segments", json=segment) as resp:
                    assert resp.status == 201, await resp.text()
                writes.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.02)  # pacing of the background writer, not a wait

        # The same writer alone first: its latency without a deletion, on this machine now.
        background = asyncio.create_task(writer())
        while len(writes) < args.baseline:  # noqa: ASYNC110 (counting the writer's requests)
            await asyncio.sleep(0.05)
        stop.set()
        await background
        baseline, writes = writes, []
        stop.clear()
        background = asyncio.create_task(writer())
        started = time.perf_counter()
        async with http.delete(f"/flows/{big['id']}") as resp:
            assert resp.status == 202, await resp.text()
            location = resp.headers["Location"]
        accepted = time.perf_counter() - started
        while True:
            async with http.get(location) as resp:
                request = await resp.json()
            if request["status"] in ("done", "error"):
                break
            await asyncio.sleep(0.05)  # polling interval of the benchmark client
        finished = time.perf_counter() - started
        stop.set()
        await background
        assert request["status"] == "done", request
        async with http.get(f"/flows/{big['id']}") as resp:
            assert resp.status == 404
        while queued_deletions(db) > 0:  # noqa: ASYNC110 (polling another process's queue)
            await asyncio.sleep(0.1)
        drained = time.perf_counter() - started
    await store.close()
    results["async flow delete"] = {
        "segments": args.segments,
        "accepted_ms": round(accepted * 1000, 1),
        "done_s": round(finished, 2),
        "segments_per_s": round(args.segments / finished),
        "bytes_deleted_s": round(drained, 2),
        "objects_per_s": round(args.segments / drained),
    }
    results["segment POST on another flow, no deletion"] = percentiles(baseline)
    results["segment POST on another flow meanwhile"] = percentiles(writes)
    print(f"segment POST on another flow, no deletion: {percentiles(baseline)}")
    print(f"async flow delete: {results['async flow delete']}")
    print(f"segment POST on another flow meanwhile: {percentiles(writes)}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--sync", default="100,500,1000", help="sizes of synchronous deletes")
    parser.add_argument("--repeat", type=int, default=5, help="synchronous deletes per size")
    parser.add_argument("--baseline", type=int, default=200, help="POSTs before the deletion")
    parser.add_argument("--chunk", type=int, help="TAMS_MEDIA_DELETE_CHUNK_SEGMENTS")
    parser.add_argument("--sync-limit", type=int, help="TAMS_MEDIA_SYNC_DELETE_LIMIT")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.sync = [int(n) for n in args.sync.split(",") if n]

    from tams_runtime.settings import S3Settings
    from tams_stack.stack import Stack

    data_dir = Path(tempfile.mkdtemp(prefix="tams-bench-"))
    env = {}
    if args.chunk:
        env["TAMS_MEDIA_DELETE_CHUNK_SEGMENTS"] = str(args.chunk)
    if args.sync_limit:
        env["TAMS_MEDIA_SYNC_DELETE_LIMIT"] = str(args.sync_limit)
    stack = Stack(data_dir, extra_env=env)
    stack.start_infrastructure()
    try:
        asyncio.run(stack.start_services(("catalog", "segments", "gateway")))
        results = asyncio.run(
            run(
                stack.gateway_url,
                data_dir / "tams.db",
                args,
                S3Settings().storage_id,
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
