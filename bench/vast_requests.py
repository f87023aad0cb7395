"""Benchmark: what the VAST adapter asks of the cluster per operation.

    uv run python bench/vast_requests.py                       # on the SDK double
    uv run python bench/vast_requests.py --segments 50000
    uv run python bench/vast_requests.py --cluster             # on the cluster in VAST_*

On a VAST cluster every SDK call is at least one HTTP round trip and a transaction adds a
begin and a commit, so the number of calls per operation, and the rows each select brings
back, are what a page or a registration costs there. On the SDK double (rows returned in
random order, `limit_rows` returning arbitrary rows, as on VAST) the script counts them
exactly: a 100-segment page at the start, middle and end of a long flow, a flow GET, a
one-segment registration on a live flow (through the real registrar and command applier),
a flows listing page, the webhook outbox (queueing an event for ten webhooks, reading and
finishing 100 deliveries of a long queue, a queue's bounds), deleting a chunk of 250
segments as a deletion step does (with the release of their objects), claiming 100 byte
deletions from a long queue, and the analytics reads. Wall times on the double measure
Python, not VAST, and are not printed (`--tables` adds which tables each one selects from).
With `--cluster` the same operations run against the cluster configured by the `VAST_*`
variables, in a fresh schema that is dropped afterwards, and the script prints
their wall times instead (best and median of `--repeat` runs).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from tams_runtime import deletion
from tams_runtime.applier import CommandApplier
from tams_runtime.settings import S3Settings
from tams_runtime.storage import BackendClients, StorageBackends
from tams_schema.envelopes import CommandEnvelope
from tams_schema.timerange import TimeRange
from tams_segments.registration import ObjectChecker, Registrar
from tams_store import FlowQuery, StoreUnavailable
from tams_store.analytics import FlowFilter
from tams_store.port import Delivery, ObjectRecord, QueuedEvent, SegmentRecord
from tams_store.vast import VastSettings, VastStore, migrations
from tams_store.vast.double import FakeVastCluster
from tams_store.vast.tables import Tables

SEGMENT_NS = 2_000_000_000
PAGE = 100
CALLS = ("begin", "commit", "select", "insert", "update", "delete", "stats")
HOOK = "5b0f1d4e-0000-4000-8000-000000000001"
QUEUED = 20_000  # deliveries waiting in one webhook's queue
JOBS = 20_000  # byte deletions waiting to be claimed


def flow_doc(flow_id: str, label: str) -> dict[str, Any]:
    stamp = "2026-01-01T00:00:00.000000Z"
    return {
        "id": flow_id,
        "source_id": str(uuid.uuid4()),
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "label": label,
        "created": stamp,
        "metadata_updated": stamp,
        "tags": {},
    }


def source_doc(source_id: str) -> dict[str, Any]:
    stamp = "2026-01-01T00:00:00.000000Z"
    return {"id": source_id, "format": "urn:x-nmos:format:video", "created": stamp, "tags": {}}


async def load(store: VastStore, flow_id: str, segments: int, flows: int) -> None:
    for n in range(flows):
        doc = flow_doc(flow_id if n == 0 else str(uuid.uuid4()), f"flow {n}")

        def put(tx: Any, doc: dict[str, Any] = doc) -> None:
            tx.put_source(source_doc(doc["source_id"]))
            tx.put_flow(doc)

        await store.write(put)
    object_id = str(uuid.uuid4())
    external = ObjectRecord(object_id, None, None, None, True, flow_id, {"timerange": "_"})
    for offset in range(0, segments, 5000):
        batch = [
            SegmentRecord(
                i * SEGMENT_NS,
                (i + 1) * SEGMENT_NS,
                object_id,
                str(TimeRange.from_half_open(i * SEGMENT_NS, (i + 1) * SEGMENT_NS)),
                {},
                0,
            )
            for i in range(offset, min(segments, offset + 5000))
        ]
        objects = [external] if offset == 0 else []
        await store.write(lambda tx, b=batch, o=objects: tx.add_segments(flow_id, b, o, "now"))
    # A long webhook queue and a long queue of byte deletions, stored directly (what queueing
    # costs is measured below, one event at a time).
    events = [str(uuid.uuid4()) for _ in range(QUEUED)]
    jobs = [
        {"kind": "delete", "object_id": str(uuid.uuid4()), "storage_id": "s", "created_ns": i}
        | {"attempts": 0, "lease_until_ns": 0}
        for i in range(JOBS)
    ]
    bulk = {
        "webhook_events": [
            {"event_id": e, "payload": "{}", "parts": 1, "remaining": 1, "queued_ns": 0}
            for e in events
        ],
        "webhook_deliveries": [
            {"webhook_id": HOOK, "seq": i, "event_id": e} for i, e in enumerate(events)
        ],
        "media_jobs": jobs,
    }
    session = store._new_session()
    for table, rows in bulk.items():
        for offset in range(0, len(rows), 5000):
            with session.transaction() as tx:
                Tables(tx, store.catalog)[table].insert(rows[offset : offset + 5000])


def operations(
    store: VastStore, flow_id: str, segments: int
) -> dict[str, Callable[[], Awaitable[Any]]]:
    backends = StorageBackends.from_settings(
        S3Settings(endpoint_url="http://s3.invalid", access_key="a", secret_key="s")
    )
    registrar = Registrar(store, ObjectChecker(BackendClients(backends)))
    applier = CommandApplier(
        store, {"segments.add": registrar}, is_retryable=lambda e: isinstance(e, StoreUnavailable)
    )
    next_start = [segments]

    def page_at(position: int) -> Callable[[], Awaitable[Any]]:
        query = TimeRange.parse(f"[{position * SEGMENT_NS // 1_000_000_000}:0_")
        return lambda: store.read(
            lambda tx: tx.list_segments(
                flow_id, timerange=query, object_id=None, reverse=False, page=None, limit=PAGE
            )
        )

    async def register_one() -> Any:
        start = next_start[0]
        next_start[0] += 1
        item = {
            "object_id": str(uuid.uuid4()),
            "timerange": f"[{start * 2}:0_{start * 2 + 2}:0)",
            "get_urls": [{"url": "https://cdn.example/x", "label": "cdn"}],
        }
        command = CommandEnvelope(
            name="segments.add",
            key=flow_id,
            issued_at=datetime.now(UTC),
            payload={"flow_id": flow_id, "segments": [item], "single": True},
        )
        (outcome,) = await applier([command])
        assert outcome.status == 201, outcome

    next_seq = [QUEUED]
    finished = [0]

    async def queue_one() -> Any:
        hooks = {HOOK: next_seq[0], **{str(uuid.uuid4()): 0 for _ in range(9)}}
        next_seq[0] += 1
        event = QueuedEvent(str(uuid.uuid4()), {"event_type": "flows/updated"}, hooks)
        assert await store.write(lambda tx: tx.queue_event(event, time.time_ns()))

    async def finish_page() -> Any:
        start = finished[0]
        finished[0] += PAGE
        page = await store.read(lambda tx: tx.pending_deliveries(HOOK, start, start + PAGE, PAGE))
        done = [Delivery(HOOK, d.seq, d.event_id, d.payload) for d in page]
        await store.write(lambda tx: tx.finish_deliveries(done))

    async def delete_chunk() -> Any:
        """What a deletion step does with the next 250 segments of the flow."""

        def work(tx: Any) -> Any:
            flow = tx.get_flow(flow_id)
            chunk = tx.segments_within(flow_id, TimeRange.eternity(), object_id=None, limit=251)[
                :250
            ]
            return deletion.delete_segments(tx, flow, chunk, sparse=False, now=datetime.now(UTC))

        await store.write(work)

    hour = 3600 * 1_000_000_000
    window = (segments // 3 * SEGMENT_NS + 7, segments // 3 * SEGMENT_NS + 7 + hour)
    everything = FlowFilter()
    one_flow = FlowFilter(flow_id=flow_id)
    return {
        "segment page, start": page_at(0),
        "segment page, middle": page_at(segments // 2),
        "segment page, end": page_at(segments - PAGE - 1),
        "GET flow": lambda: store.read(lambda tx: tx.get_flow(flow_id)),
        "register 1 segment (live)": register_one,
        "flows listing page": lambda: store.read(lambda tx: tx.list_flows(FlowQuery(limit=PAGE))),
        "queue 1 event for 10 webhooks": queue_one,
        "read 100 deliveries": lambda: store.read(
            lambda tx: tx.pending_deliveries(HOOK, QUEUED // 2, QUEUED, PAGE)
        ),
        "read + finish 100 deliveries": finish_page,
        "bounds of a queue": lambda: store.read(lambda tx: tx.delivery_queues(HOOK)),
        "delete 250 segments (a step)": delete_chunk,
        "claim 100 byte deletions": lambda: store.write(
            lambda tx: tx.claim_media_jobs("delete", "bench", time.time_ns(), 10**12, PAGE)
        ),
        "analytics: catalog summary": lambda: store.read(lambda tx: tx.catalog_counts()),
        "analytics: storage usage": lambda: store.read(lambda tx: tx.storage_usage()),
        "analytics: flow usage page": lambda: store.read(
            lambda tx: tx.flow_usage(everything, None, PAGE)
        ),
        "analytics: coverage, 1 h window": lambda: store.read(
            lambda tx: tx.flow_coverage(one_flow, window, 100, None, 1)
        ),
    }


async def on_double(args: argparse.Namespace) -> None:
    cluster = FakeVastCluster(seed=1)
    store = VastStore(
        VastSettings(endpoint="http://vast.invalid", access_key="a", secret_key="s", bucket="tams"),
        connect=cluster.connect,
        sleep=lambda _: None,
    )
    await store.open()
    flow_id = str(uuid.uuid4())
    await load(store, flow_id, args.segments, args.flows)
    print(f"SDK double: {args.segments:,} segments in one flow, {args.flows:,} flows")
    print(f"{'operation':30} " + " ".join(f"{c:>7}" for c in (*CALLS, "rows")))
    for name, run in operations(store, flow_id, args.segments).items():
        before = Counter(cluster.requests)
        await run()
        delta = Counter(cluster.requests)
        delta.subtract(before)
        figures = [delta[c] for c in (*CALLS, "rows_returned")]
        print(f"{name:30} " + " ".join(f"{f:>7}" for f in figures))
        if args.tables:
            tables = sorted((k[7:], n) for k, n in delta.items() if k.startswith("select ") and n)
            print(f"{'':30} selects: " + ", ".join(f"{t} {n}" for t, n in tables))
    await store.close()


async def on_cluster(args: argparse.Namespace) -> None:
    settings = VastSettings()
    settings.schema_name = f"tams_bench_{uuid.uuid4().hex[:10]}"
    store = VastStore(settings)
    await store.open()
    try:
        flow_id = str(uuid.uuid4())
        await load(store, flow_id, args.segments, args.flows)
        print(f"VAST {settings.endpoint}: {args.segments:,} segments, {args.flows:,} flows")
        print(f"{'operation':30} {'best ms':>8} {'median ms':>10}")
        for name, run in operations(store, flow_id, args.segments).items():
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                await run()
                times.append((time.perf_counter() - start) * 1000)
            print(f"{name:30} {min(times):>8.1f} {statistics.median(times):>10.1f}")
    finally:
        await store.close()
        session = store._new_session()
        with session.transaction() as tx:
            migrations.drop_schema(tx, settings.bucket, settings.schema_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=20_000)
    parser.add_argument("--flows", type=int, default=200)
    parser.add_argument("--cluster", action="store_true", help="use the VAST_* cluster")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--tables", action="store_true", help="selects per table (double)")
    args = parser.parse_args()
    asyncio.run(on_cluster(args) if args.cluster else on_double(args))


if __name__ == "__main__":
    main()
