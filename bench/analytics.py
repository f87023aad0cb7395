"""Benchmark: analytics queries on a large store, and what the counters cost segment writes.

    uv run python bench/analytics.py                     # 1,000,000 segments, fresh stack
    uv run python bench/analytics.py --segments 100000

1. Write cost: registers the same segments (100 per transaction, one new object each, as the
   segments service does) into fresh SQLite stores, keeping the analytics counters or with
   them switched off, alternately, three times each, then deletes the flow, and prints the
   store time per segment and of the deletion (the best of each kind goes into --json).
2. Query cost: loads one flow of --segments two-second segments with a gap every 1,000
   segments, plus --flows small flows, through the store port. Then it times each analytics
   query in the store alone (median and max of 50 read transactions), and reads every
   analytics endpoint through the gateway (32 clients, paced at --rate requests/s) and prints
   p50/p90/p99. Figures read counter rows (a handful, or one per gap, or one per hour of a
   time window), never the segments themselves, except the edge hours of a time window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
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

SEGMENT_NS = 2_000_000_000
GAP_EVERY = 1000
VIDEO = "urn:x-nmos:format:video"


def ts(ns: int) -> str:
    return f"{ns // 1_000_000_000}:{ns % 1_000_000_000}"


def flow_doc(flow_id: str, fmt: str = VIDEO) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": flow_id,
        "source_id": str(uuid.uuid4()),
        "format": fmt,
        "container": "video/mp2t",
    }
    if fmt == VIDEO:
        doc["codec"] = "video/h264"
        doc["essence_parameters"] = {
            "frame_width": 1920,
            "frame_height": 1080,
            "frame_rate": {"numerator": 25},
        }
    else:
        doc["codec"] = "audio/aac"
        doc["essence_parameters"] = {"sample_rate": 48000, "channels": 2}
    return doc


def slot_bounds(n: int) -> tuple[int, int]:
    """Segment n, with one segment's worth of gap after every GAP_EVERY segments."""
    slot = n + n // GAP_EVERY
    return slot * SEGMENT_NS, (slot + 1) * SEGMENT_NS


async def register(store: Any, flow_id: str, count: int, storage_id: str, batch: int) -> float:
    """Register `count` segments, each with a new object of 1 MB; returns the seconds spent
    in store transactions."""
    spent = 0.0
    for offset in range(0, count, batch):
        ids = [str(uuid.uuid4()) for _ in range(min(batch, count - offset))]
        records = []
        for k, object_id in enumerate(ids):
            start, end = slot_bounds(offset + k)
            records.append(SegmentRecord(start, end, object_id, f"[{ts(start)}_{ts(end)})", {}, 0))
        objects = [
            ObjectRecord(i, flow_id, storage_id, "video/mp2t", True, flow_id, {}, 1_000_000)
            for i in ids
        ]

        def work(
            tx: Any, ids: list[str] = ids, records: Any = records, objects: Any = objects
        ) -> None:
            tx.allocate_objects(
                [ObjectAllocation(i, flow_id, storage_id, "video/mp2t", 0) for i in ids]
            )
            tx.add_segments(flow_id, records, objects, "2026-11-24T00:00:00.000000Z")

        started = time.perf_counter()
        await store.write(work)
        spent += time.perf_counter() - started
    return spent


async def write_cost(count: int) -> dict[str, float]:
    """Store seconds per segment with and without the analytics counters."""
    from tams_store.sqlite import SqliteStore, counters

    results: dict[str, float] = {}
    keep = counters.segments_inserted
    # Alternated, three times each, best kept: the machine is shared and noisy.
    for label, enabled in [("with counters", True), ("without counters", False)] * 3:
        directory = Path(tempfile.mkdtemp(prefix="tams-bench-"))
        store = SqliteStore(directory / "tams.db")
        await store.open()
        flow = flow_doc(str(uuid.uuid4()))
        flow.update(created="2026-11-24T00:00:00Z", metadata_updated="2026-11-24T00:00:00Z")
        source = {"id": flow["source_id"], "format": VIDEO, "created": flow["created"]}
        await store.write(lambda tx, f=flow, s=source: (tx.put_source(s), tx.put_flow(f)))
        if not enabled:
            with sqlite3.connect(directory / "tams.db") as conn:
                triggers = conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                ).fetchall()
                for (name,) in triggers:
                    conn.execute(f"DROP TRIGGER {name}")
            counters.segments_inserted = lambda *_: None  # type: ignore[assignment]
        try:
            spent = await register(store, flow["id"], count, "bench", 100)
            started = time.perf_counter()
            await store.write(lambda tx, f=flow: tx.delete_flow(f["id"]))
            deleted = time.perf_counter() - started
        finally:
            counters.segments_inserted = keep  # type: ignore[assignment]
            await store.close()
            shutil.rmtree(directory, ignore_errors=True)
        for kind, value in ((label, spent / count * 1e6), (f"delete {label}", deleted)):
            results[kind] = min(results.get(kind, value), value)
        print(
            f"write, {label}: {spent / count * 1e6:.1f} us per segment; "
            f"deleting the flow: {deleted:.2f} s",
            flush=True,
        )
    return results


def cases(big: str, count: int) -> dict[str, str]:
    hour = 3600 * 1_000_000_000
    middle = slot_bounds(count // 2)[0]
    return {
        "catalog-summary": "/analytics/catalog-summary",
        "flow-usage (all flows, page 100)": "/analytics/flow-usage",
        "flow-usage (one format)": f"/analytics/flow-usage?format={VIDEO}&limit=10",
        "storage-usage": "/analytics/storage-usage",
        "time-range (big flow, all time)": f"/analytics/time-range-analysis?flow_id={big}",
        "time-range (big flow, 1 h window)": (
            f"/analytics/time-range-analysis?flow_id={big}"
            f"&timerange=[{ts(middle)}_{ts(middle + hour)})"
        ),
        "time-range (big flow, 24 h window)": (
            f"/analytics/time-range-analysis?flow_id={big}"
            f"&timerange=[{ts(middle)}_{ts(middle + 24 * hour)})"
        ),
    }


async def store_times(store: Any, big: str, count: int) -> dict[str, dict[str, float]]:
    """Each endpoint's store work alone: median and max ms of 50 read transactions."""
    from tams_schema.timerange import TimeRange
    from tams_store.analytics import FlowFilter

    def window(path: str) -> tuple[int, int] | None:
        if "timerange=" not in path:
            return None
        return TimeRange.parse(path.split("timerange=")[1]).half_open()

    work: dict[str, Any] = {}
    for name, path in cases(big, count).items():
        if "catalog" in name:
            work[name] = lambda tx: tx.catalog_counts()
        elif "storage" in name:
            work[name] = lambda tx: (tx.storage_usage(), tx.flow_usage(FlowFilter(), None, 1))
        elif "flow-usage" in name:
            flows = FlowFilter(format=VIDEO) if "format" in name else FlowFilter()
            limit = 10 if "format" in name else 100
            work[name] = lambda tx, f=flows, n=limit: tx.flow_usage(f, None, n)
        else:
            bounds = window(path)
            work[name] = lambda tx, w=bounds: tx.flow_coverage(
                FlowFilter(flow_id=big), w, 100, None, 100
            )
    results = {}
    for name, read in work.items():
        times = []
        for _ in range(50):
            started = time.perf_counter()
            await store.read(read)
            times.append((time.perf_counter() - started) * 1000)
        results[name] = {"median_ms": statistics.median(times), "max_ms": max(times)}
        print(f"store, {name}: median {statistics.median(times):.2f} ms", flush=True)
    return results


async def query(url: str, big: str, count: int, requests: int, rate: float) -> list[Any]:
    results = []
    async with aiohttp.ClientSession(url) as http:
        for name, path in cases(big, count).items():

            async def get(_: int, path: str = path) -> int:
                async with http.get(path) as resp:
                    await resp.read()
                    return resp.status

            results.append(await run_load(name, get, 200, total=requests, rate=rate))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--flows", type=int, default=1000, help="small flows besides the big one")
    parser.add_argument("--write-segments", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=1000, help="requests per endpoint")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    writes = asyncio.run(write_cost(args.write_segments))

    from tams_runtime.settings import S3Settings
    from tams_stack.stack import Stack
    from tams_store.sqlite import SqliteStore

    data_dir = Path(tempfile.mkdtemp(prefix="tams-bench-"))
    stack = Stack(data_dir)
    stack.start_infrastructure()
    try:
        asyncio.run(stack.start_services(("catalog", "segments", "analytics", "gateway")))
        big = str(uuid.uuid4())
        small = [str(uuid.uuid4()) for _ in range(args.flows)]

        timings: dict[str, Any] = {}

        async def setup() -> None:
            async with aiohttp.ClientSession(stack.gateway_url) as http:
                for n, flow_id in enumerate([big, *small]):
                    fmt = VIDEO if n % 2 == 0 else "urn:x-nmos:format:audio"
                    async with http.put(f"/flows/{flow_id}", json=flow_doc(flow_id, fmt)) as resp:
                        assert resp.status == 201, await resp.text()
            store = SqliteStore(data_dir / "tams.db")
            await store.open()
            storage_id = S3Settings().storage_id
            started = time.perf_counter()
            await register(store, big, args.segments, storage_id, 10_000)
            for flow_id in small:
                await register(store, flow_id, 10, storage_id, 10)
            print(f"loaded in {time.perf_counter() - started:.1f}s", flush=True)
            await store.close()
            # Fold the bulk load's write-ahead log into the database now, as the services'
            # background checkpoints would over time, so it does not weigh on the reads.
            with sqlite3.connect(data_dir / "tams.db") as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await store.open()
            timings.update(await store_times(store, big, args.segments))
            await store.close()

        asyncio.run(setup())
        results = asyncio.run(
            query(stack.gateway_url, big, args.segments, args.requests, args.rate)
        )
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    if args.json:
        report = {"writes_us": writes, "store_ms": timings, "queries": results}
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
