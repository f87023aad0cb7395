"""Benchmark: what a segment tag filter costs a page of segments (docs/ext-segment-tags.md).

    uv run python bench/segment_tags.py                      # 200,000 segments
    uv run python bench/segment_tags.py --segments 1000000

Straight on the SQLite store (the gateway adds the same per-page cost with or without a
filter): one flow of two-second segments, one in a hundred tagged `rare=yes`, every one tagged
`genre=news`. Pages of 100 are read at the start, middle and end of the flow, without a filter
and with `tag.genre=news` (every segment matches), `tag.rare=yes` (1% match: the page is cut
short at the scan bound, port.SEGMENT_TAG_SCAN_LIMIT) and `tag_exists.rare=false`. Prints
p50/p99 per case and position, and how many segments each page held.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tams_schema.timerange import TimeRange
from tams_store import TagFilter
from tams_store.port import ObjectRecord, SegmentRecord
from tams_store.sqlite import SqliteStore

SEGMENT_NS = 2_000_000_000
PAGE = 100
CASES: dict[str, TagFilter | None] = {
    "no filter": None,
    "tag.genre=news (all)": TagFilter(values={"genre": ["news"]}),
    "tag.rare=yes (1%)": TagFilter(values={"rare": ["yes"]}),
    "tag_exists.rare=false (99%)": TagFilter(exists={"rare": False}),
}


def ts(ns: int) -> str:
    return f"{ns // 1_000_000_000}:{ns % 1_000_000_000}"


async def load(store: SqliteStore, count: int) -> str:
    flow_id, source_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = "2026-11-25T00:00:00.000000Z"
    flow = {
        "id": flow_id,
        "source_id": source_id,
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "created": now,
        "metadata_updated": now,
        "tags": {},
    }

    def create(tx: Any) -> None:
        source = {"id": source_id, "format": flow["format"], "created": now, "updated": now}
        tx.put_source({**source, "tags": {}})
        tx.put_flow(flow)

    await store.write(create)
    obj = str(uuid.uuid4())
    batch = 10_000
    for offset in range(0, count, batch):

        def work(tx: Any, offset: int = offset) -> None:
            records = []
            tags: dict[int, dict[str, Any]] = {}
            for n in range(offset, min(offset + batch, count)):
                start, end = n * SEGMENT_NS, (n + 1) * SEGMENT_NS
                records.append(SegmentRecord(start, end, obj, f"[{ts(start)}_{ts(end)})", {}, 0))
                tags[start] = {"genre": "news", **({"rare": "yes"} if n % 100 == 0 else {})}
            registered = [ObjectRecord(obj, None, None, None, True, flow_id, {})]
            tx.add_segments(flow_id, records, registered, "2026-11-25T00:00:00.000000Z")
            tx.replace_segment_tags(flow_id, tags, "2026-11-25T00:00:00.000000Z")

        await store.write(work)
    return flow_id


async def measure(store: SqliteStore, flow_id: str, count: int, reads: int) -> None:
    positions = {"start": 0, "middle": count // 2, "end": count - PAGE}
    print(f"{'case':30} {'position':8} {'p50 ms':>8} {'p99 ms':>8} {'items':>6}")
    for name, tags in CASES.items():
        for position, index in positions.items():
            query = TimeRange.parse(f"[{ts(index * SEGMENT_NS)}_")
            times, items = [], 0
            for _ in range(reads):
                began = time.perf_counter()
                page = await store.read(
                    lambda tx, q=query, t=tags: tx.list_segments(
                        flow_id,
                        timerange=q,
                        object_id=None,
                        reverse=False,
                        page=None,
                        limit=PAGE,
                        tags=t,
                    )
                )
                times.append((time.perf_counter() - began) * 1000)
                items = len(page.items)
            times.sort()
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            print(f"{name:30} {position:8} {statistics.median(times):8.2f} {p99:8.2f} {items:6}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=200_000)
    parser.add_argument("--reads", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "tams.db")
        await store.open()
        began = time.perf_counter()
        flow_id = await load(store, args.segments)
        print(f"loaded {args.segments} segments in {time.perf_counter() - began:.1f} s")
        await measure(store, flow_id, args.segments, args.reads)
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
