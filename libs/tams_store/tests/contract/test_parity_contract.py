"""Every field of every record, and the edges of every query, read back alike on every adapter:
a field one adapter drops, or a bound one mishandles, is a behaviour that depends on the store
in production (as a webhook's owner once did)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from tams_schema.auth import Principal
from tams_schema.envelopes import Outcome
from tams_schema.timerange import MAX_NS, MIN_NS, TimeRange
from tams_store import FlowQuery, SourceQuery, Store
from tams_store.port import (
    DeletedFlowRecord,
    DeletionRequestRecord,
    Delivery,
    MediaJob,
    ObjectAllocation,
    ObjectRecord,
    QueuedEvent,
    SegmentRecord,
    WebhookRecord,
)

from .docs import flow, new_id, source, stamp
from .test_catalog_contract import put_all

UNICODE = "Zürich ☃ 東京 🎬 \u0301e"
LONG = "x" * 40_000 + UNICODE


async def test_a_webhook_keeps_every_field(store: Store) -> None:
    record = WebhookRecord(
        id=new_id(),
        doc={"url": f"https://a.example/{UNICODE}", "events": ["flows/created"], "note": LONG},
        status="error",
        error={"type": "delivery", "summary": UNICODE, "detail": {}},
        api_key_value="",
        generation=2**63 - 1,
        owner=Principal(name=UNICODE, scopes=("read",), groups=()),
        signing_secret="plain:whsec_" + "A" * 40,
    )
    bare = WebhookRecord(id=new_id(), doc={"url": "https://b.example/"}, status="created")
    await store.write(lambda tx: (tx.put_webhook(record), tx.put_webhook(bare)))
    got = await store.read(lambda tx: {w.id: w for w in tx.all_webhooks()})
    assert got == {record.id: record, bare.id: bare}
    # A status change without an error clears the error; the rest stays as it was.
    assert await store.write(
        lambda tx: tx.set_webhook_status(record.id, "started", None, generation=2**63 - 1)
    )
    changed = await store.read(lambda tx: tx.get_webhook(record.id))
    assert changed == replace(record, status="started", error=None)


async def test_a_long_unicode_event_payload_is_delivered_whole(store: Store) -> None:
    hook = WebhookRecord(id=new_id(), doc={"url": "https://a.example/"}, status="created")
    payload = {"event_type": "flows/updated", "event": {"label": LONG, "n": 2**63 - 1}}
    queued = QueuedEvent(new_id(), payload, {hook.id: 2**62})

    def work(tx: Any) -> bool:
        tx.put_webhook(hook)
        return bool(tx.queue_event(queued, 1))

    assert await store.write(work)
    assert await store.read(lambda tx: tx.pending_deliveries(hook.id, 2**62, 2**63 - 1, 10)) == [
        Delivery(hook.id, 2**62, queued.event_id, payload)
    ]
    assert await store.read(lambda tx: tx.delivery_queues(hook.id)) == {hook.id: (2**62, 2**62)}
    # An event for no webhook is still remembered: its redelivery queues nothing.
    nobody = QueuedEvent(new_id(), payload, {})
    assert await store.write(lambda tx: tx.queue_event(nobody, 1))
    assert not await store.write(lambda tx: tx.queue_event(nobody, 1))


async def test_an_object_keeps_every_field(store: Store) -> None:
    doc = flow()
    await put_all(store, doc)
    allocated, external = new_id(), new_id()
    await store.write(
        lambda tx: tx.allocate_objects(
            [ObjectAllocation(allocated, doc["id"], UNICODE, "video/mp2t", 2**63 - 1)]
        )
    )
    start = 0
    seg = SegmentRecord(start, 10, allocated, "[0:0_0:10)", {"note": UNICODE}, created_ns=5)
    seg2 = SegmentRecord(10, 20, external, "[0:10_0:20)", {}, created_ns=MAX_NS)
    registered = ObjectRecord(
        object_id=allocated,
        allocated_flow_id=doc["id"],
        storage_id=UNICODE,
        content_type="video/mp2t",
        registered=True,
        first_referenced_by_flow=doc["id"],
        doc={"timerange": "[0:0_0:10)", "key_frame_count": 0, "label": LONG},
        size=0,
        allocated_ns=2**63 - 1,
    )
    outside = ObjectRecord(
        object_id=external,
        allocated_flow_id=None,
        storage_id=None,
        content_type=None,
        registered=True,
        first_referenced_by_flow=doc["id"],
        doc={"get_urls": []},
        size=None,
    )
    await store.write(
        lambda tx: tx.add_segments(doc["id"], [seg, seg2], [registered, outside], "s")
    )
    got = await store.read(lambda tx: tx.get_objects([allocated, external, new_id()]))
    assert got == {allocated: registered, external: outside}
    within = await store.read(
        lambda tx: tx.segments_within(doc["id"], TimeRange.eternity(), object_id=None, limit=10)
    )
    assert within == [seg, seg2]


async def test_a_media_job_keeps_every_field(store: Store) -> None:
    object_id = new_id()
    job = MediaJob("copy", object_id, UNICODE, MIN_NS, lease_until_ns=MIN_NS)
    await store.write(lambda tx: tx.queue_media_jobs([job]))
    assert await store.read(lambda tx: tx.media_jobs_of([object_id])) == [job]
    claimed = await store.write(lambda tx: tx.claim_media_jobs("copy", "w\u00e9", 0, 10, 5))
    assert claimed == [replace(job, attempts=1, lease_owner="w\u00e9", lease_until_ns=10)]
    assert await store.read(lambda tx: tx.media_jobs_of([object_id])) == claimed


async def test_a_deletion_request_keeps_every_field(store: Store) -> None:
    doc = {
        "id": new_id(),
        "flow_id": new_id(),
        "timerange_to_delete": "_",
        "timerange_remaining": "_",
        "delete_flow": True,
        "status": "started",
        # Offsets other than Z order by the instant they name.
        "created": "2026-01-01T01:00:00.5+01:00",
        "updated": "2026-01-01T00:00:01Z",
        "expiry": "2026-01-02T00:00:00-05:00",
        "note": UNICODE,
    }
    record = DeletionRequestRecord(doc=doc, object_id=UNICODE, step=2**63 - 1, resumes=7)
    earlier = DeletionRequestRecord(doc={**doc, "id": new_id(), "created": stamp(0)})
    await store.write(
        lambda tx: (tx.put_deletion_request(record), tx.put_deletion_request(earlier))
    )
    assert await store.read(lambda tx: tx.get_deletion_request(doc["id"])) == record
    listed = await store.read(
        lambda tx: tx.list_deletion_requests(
            sort_by="created", reverse_order=False, page=None, limit=10
        )
    )
    assert [d["id"] for d in listed.items] == [doc["id"], earlier.id]


async def test_a_deleted_flow_keeps_every_field(store: Store) -> None:
    doc = flow(label=UNICODE)
    src = source(doc["source_id"], label=LONG)
    await put_all(store, doc)
    record = DeletedFlowRecord(
        flow=doc,
        deleted=stamp(1),
        deleted_ns=MIN_NS,
        purge_after=stamp(2),
        purge_after_ns=MAX_NS,
        deleted_by=UNICODE,
        timerange="[0:0_1:0)",
        source=src,
    )
    await store.write(lambda tx: tx.hide_flow(record))
    assert await store.read(lambda tx: tx.get_deleted_flow(doc["id"])) == record
    await store.write(lambda tx: tx.start_purge(doc["id"], UNICODE))
    started = replace(record, purge_request_id=UNICODE)
    assert await store.read(lambda tx: tx.get_deleted_flow(doc["id"])) == started
    assert await store.read(lambda tx: tx.list_deleted_flows(None, 5)) == ([started], None)


async def test_segments_at_the_ends_of_the_timeline(store: Store) -> None:
    doc = flow()
    await put_all(store, doc)
    first = SegmentRecord(MIN_NS, MIN_NS + 10, new_id(), "_", {}, created_ns=0)
    last = SegmentRecord(MAX_NS - 10, MAX_NS, new_id(), "_", {}, created_ns=0)
    objects = [
        ObjectRecord(s.object_id, None, None, None, True, doc["id"], {}) for s in (first, last)
    ]
    await store.write(lambda tx: tx.add_segments(doc["id"], [first, last], objects, "s"))

    def pages(tx: Any, reverse: bool, timerange: TimeRange | None) -> list[int]:
        starts: list[int] = []
        page = None
        while True:
            result = tx.list_segments(
                doc["id"], timerange=timerange, object_id=None, reverse=reverse, page=page, limit=1
            )
            starts += [s.start for s in result.items]
            if result.next_key is None:
                return starts
            page = result.next_key

    for timerange in (None, TimeRange.eternity()):
        assert await store.read(lambda tx, t=timerange: pages(tx, False, t)) == [
            MIN_NS,
            MAX_NS - 10,
        ]
        assert await store.read(lambda tx, t=timerange: pages(tx, True, t)) == [
            MAX_NS - 10,
            MIN_NS,
        ]
    assert await store.write(lambda tx: tx.overlapping_segments(doc["id"], MIN_NS, MAX_NS)) == [
        (MIN_NS, MIN_NS + 10)
    ]
    ends = await store.read(
        lambda tx: tx.segments_within(doc["id"], TimeRange.eternity(), object_id=None, limit=5)
    )
    assert [s.start for s in ends] == [MIN_NS, MAX_NS - 10]


async def test_listings_sort_unicode_labels_alike(store: Store) -> None:
    labels = ["b", "B", "é", "e\u0301", "🎬", "東", "", "a" * 5000]
    docs = [flow(label=label, at=i) for i, label in enumerate(labels)]
    docs.append(flow(at=99))
    await put_all(store, *docs)
    listed = await store.read(lambda tx: tx.list_flows(FlowQuery(sort_by="label", limit=100)))
    by_id = {d["id"]: d.get("label") for d in docs}
    got = [by_id[f["id"]] for f in listed.items]
    assert got == [*sorted(labels), None]
    one = await store.read(lambda tx: tx.list_flows(FlowQuery(label="e\u0301")))
    assert [f["label"] for f in one.items] == ["e\u0301"]
    sources = await store.read(lambda tx: tx.list_sources(SourceQuery(label="")))
    assert sources.items == []


async def test_source_routing_without_tags(store: Store) -> None:
    bare = {k: v for k, v in source().items() if k != "tags"}
    await store.write(lambda tx: tx.put_source(bare))
    assert await store.read(lambda tx: tx.source_routing(bare["id"])) == {}


async def test_source_routing_of_a_source_with_null_tags(store: Store) -> None:
    doc = source(tags=None)
    await store.write(lambda tx: tx.put_source(doc))
    got = await store.read(lambda tx: tx.get_source(doc["id"]))
    routing = await store.read(lambda tx: tx.source_routing(doc["id"]))
    assert routing == {k: got[k] for k in ("tags", "collected_by") if k in got}


async def test_outcomes_are_forgotten_oldest_first(store: Store) -> None:
    """A pass forgets the oldest outcomes first, whatever order the store reads them in."""
    ids = [new_id() for _ in range(6)]
    for command_id in ids:
        await store.write(lambda tx, c=command_id: tx.record_outcome(c, Outcome(status=204)))
    cutoff = time.time_ns()
    for n in range(1, len(ids) + 1):
        assert await store.write(lambda tx: tx.forget_outcomes(cutoff, 1)) == 1
        left = [c for c in ids if await store.write(lambda tx, c=c: tx.recorded_outcome(c))]
        assert left == ids[n:]
