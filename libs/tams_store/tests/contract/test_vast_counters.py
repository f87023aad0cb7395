"""VAST adapter on the SDK double: the analytics counters its write paths keep agree with a
recount from the committed rows after any mix of writes, deletions, retried transactions
and a commit that landed although it seemed to fail; the ordering helpers find exactly the
first rows whatever order and subset the store returns; the new hot paths ask for bounded
work."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from ibis import _

from tams_schema.timerange import TimeRange
from tams_store import TagFilter
from tams_store.analytics import BUCKET_NS, FlowFilter
from tams_store.port import (
    DeletedFlowRecord,
    Delivery,
    MediaJob,
    ObjectAllocation,
    ObjectRecord,
    QueuedEvent,
    SegmentRecord,
)
from tams_store.vast import VastStore
from tams_store.vast.counters import merge
from tams_store.vast.double import FakeVastCluster, conflict, lost_connection
from tams_store.vast.ordered import first_distinct, first_rows
from tams_store.vast.tables import Tables, all_of

from .conftest import double_store
from .docs import flow, new_id, source

S = 1_000_000_000
SCHEMA = ("tams", "tams")


async def opened(cluster: FakeVastCluster) -> VastStore:
    store = double_store(cluster)
    await store.open()
    return store


def rows(cluster: FakeVastCluster, table: str) -> list[dict[str, Any]]:
    return cluster.rows(*SCHEMA, table)


def nonzero(counts: Counter[Any]) -> dict[Any, int]:
    return {k: v for k, v in counts.items() if v}


def recount(cluster: FakeVastCluster) -> dict[str, Any]:
    """Every counter, computed the slow way from the committed base rows."""
    objects = {r["id"]: r for r in rows(cluster, "objects")}
    flows = rows(cluster, "flows")
    by_flow: dict[str, list[dict[str, Any]]] = {}
    for seg in rows(cluster, "segments"):
        by_flow.setdefault(seg["flow_id"], []).append(seg)
    figures: dict[str, tuple[int, int, int, int]] = {}
    for flow_row in flows:
        segs = by_flow.get(flow_row["id"], [])
        sizes = [objects.get(s["object_id"], {}).get("size") for s in segs]
        figures[flow_row["id"]] = (
            len(segs),
            sum(s["seg_end"] - s["seg_start"] for s in segs),
            sum(z or 0 for z in sizes),
            sum(z is None for z in sizes),
        )
    usage: Counter[Any] = Counter()
    for flow_row in flows:
        group = (flow_row["format"], flow_row.get("codec") or "")
        usage[(*group, "flows")] += 1
        for name, value in zip(
            ("segments", "duration_ns", "bytes", "unsized"), figures[flow_row["id"]], strict=True
        ):
            usage[(*group, name)] += value
    storage: Counter[Any] = Counter()
    for obj in objects.values():
        backend, registered, size = obj["storage_id"] or "", obj["registered"], obj["size"]
        storage[(backend, "objects")] += int(registered)
        storage[(backend, "bytes")] += (size or 0) if registered else 0
        storage[(backend, "unsized")] += int(registered and size is None)
        storage[(backend, "allocated")] += int(not registered)
    sources = Counter(r["format"] for r in rows(cluster, "sources"))
    runs = {
        flow_id: merge((s["seg_start"], s["seg_end"]) for s in segs)
        for flow_id, segs in by_flow.items()
    }
    buckets = Counter(
        (s["flow_id"], s["seg_start"] // BUCKET_NS) for s in rows(cluster, "segments")
    )
    init_refs = Counter(
        (objects[s["object_id"]]["init_object_id"], s["flow_id"])
        for s in rows(cluster, "segments")
        if objects.get(s["object_id"], {}).get("init_object_id")
    )
    return {
        "flows": figures,
        "usage": nonzero(usage),
        "storage": nonzero(storage),
        "sources": nonzero(sources),
        "runs": {k: v for k, v in runs.items() if v},
        "buckets": nonzero(buckets),
        "init_refs": nonzero(init_refs),
    }


def counted(cluster: FakeVastCluster) -> dict[str, Any]:
    """The counters as the adapter keeps them (sums over shards and duplicate rows)."""
    figures = {
        r["id"]: (r["seg_count"] or 0, r["duration_ns"] or 0, r["bytes"] or 0, r["unsized"] or 0)
        for r in rows(cluster, "flows")
    }
    usage: Counter[Any] = Counter()
    storage: Counter[Any] = Counter()
    sources: Counter[Any] = Counter()
    for row in rows(cluster, "totals"):
        if row["kind"] == "usage":
            for name in ("flows", "segments", "duration_ns", "bytes", "unsized"):
                usage[(row["key"], row["subkey"], name)] += row[name] or 0
        elif row["kind"] == "storage":
            for name in ("objects", "bytes", "unsized", "allocated"):
                storage[(row["key"], name)] += row[name] or 0
        else:
            sources[row["key"]] += row["sources"] or 0
    runs: dict[str, list[tuple[int, int]]] = {}
    for row in rows(cluster, "flow_runs"):
        runs.setdefault(row["flow_id"], []).append((row["run_start"], row["run_end"]))
    buckets: Counter[Any] = Counter()
    for row in rows(cluster, "flow_buckets"):
        buckets[(row["flow_id"], row["bucket"])] += row["segments"]
    init_refs: Counter[Any] = Counter()
    for row in rows(cluster, "init_refs"):
        init_refs[(row["init_object_id"], row["flow_id"])] += row["segments"]
    return {
        "flows": figures,
        "usage": nonzero(usage),
        "storage": nonzero(storage),
        "sources": nonzero(sources),
        "runs": {k: sorted(v) for k, v in runs.items()},
        "buckets": nonzero(buckets),
        "init_refs": nonzero(init_refs),
    }


def assert_counters_match(cluster: FakeVastCluster) -> None:
    expected, kept = recount(cluster), counted(cluster)
    for name in expected:
        assert kept[name] == expected[name], name


async def fill(store: VastStore, rng: random.Random, flows: int) -> list[dict[str, Any]]:
    docs = []
    for n in range(flows):
        doc = flow(codec=rng.choice(["video/h264", "video/h265", None]))
        if doc["codec"] is None:
            del doc["codec"]
        init = new_id()
        slots = rng.sample(range(60), 45)
        # Batches of (allocations, segments, objects), planned before the transaction.
        plan: list[tuple[list[ObjectAllocation], list[SegmentRecord], list[ObjectRecord]]] = []
        for batch in range(0, len(slots), 7):
            records, objects, allocations = [], [], []
            for slot in slots[batch : batch + 7]:
                object_id = new_id()
                size = rng.choice([None, 100, 2500])
                storage = None if size is None else f"backend-{n % 2}"
                if storage:
                    allocations.append(
                        ObjectAllocation(object_id, doc["id"], storage, "video/mp2t", 0)
                    )
                media = {"init_object_id": init} if rng.random() < 0.5 else {}
                objects.append(
                    ObjectRecord(object_id, None, storage, None, True, doc["id"], media, size)
                )
                # 700 s slots from before 0 on: several hours, both signs, touching.
                start = (slot - 20) * 700 * S
                records.append(SegmentRecord(start, start + 700 * S, object_id, "x", {}, 0))
            if batch == 0:
                objects.append(
                    ObjectRecord(init, doc["id"], "backend-0", "x", True, doc["id"], {}, 7)
                )
            plan.append((allocations, records, objects))

        def work(tx: Any, doc: dict[str, Any] = doc, init: str = init, plan: Any = plan) -> None:
            tx.put_source(source(doc["source_id"]))
            tx.put_flow(doc)
            tx.allocate_objects([ObjectAllocation(init, doc["id"], "backend-0", "x", 0)])
            for allocations, records, objects in plan:
                tx.allocate_objects(allocations)
                tx.add_segments(doc["id"], records, objects, "2026-01-01T00:00:00.000000Z")

        await store.write(work)
        docs.append(doc)
    return docs


async def test_counters_agree_with_a_recount_after_writes_deletes_and_retries() -> None:
    rng = random.Random(5)
    cluster = FakeVastCluster(seed=5)
    store = await opened(cluster)
    docs = await fill(store, rng, flows=4)
    assert_counters_match(cluster)

    # Random segments of two flows deleted in chunks, from the ends and the middle, the
    # first attempt of one chunk failing with a conflict (the retry counts afresh).
    everything = TimeRange.eternity()
    for doc in docs[:2]:
        listed = await store.read(
            lambda tx, d=doc: tx.segments_within(d["id"], everything, object_id=None, limit=1000)
        )
        chosen = rng.sample(listed, 25)
        for offset in range(0, 25, 10):
            chunk = chosen[offset : offset + 10]
            if offset == 10:
                cluster.inject("commit", conflict("concurrent writer"))

            def delete(tx: Any, d: dict[str, Any] = doc, c: list[Any] = chunk) -> None:
                tx.delete_segments(d["id"], c, "2026-01-02T00:00:00.000000Z")
                gone = tx.unreferenced_objects([s.object_id for s in c])
                tx.remove_objects(gone)

            await store.write(delete)
    assert_counters_match(cluster)

    # A contiguous stretch of a third flow, by a commit that lands but seems to fail: the
    # retry finds nothing left to delete and counts nothing twice.
    stretch = TimeRange.from_half_open(-3000 * S, 9000 * S)
    within = await store.read(
        lambda tx: tx.segments_within(docs[2]["id"], stretch, object_id=None, limit=1000)
    )
    cluster.inject("commit", lost_connection(), after=True)
    await store.write(lambda tx: tx.delete_segments(docs[2]["id"], within, "now"))
    assert_counters_match(cluster)

    # A replace that changes the codec, a format change of a source, unregistered objects
    # collected, a flow deleted with its source.
    await store.write(lambda tx: tx.put_flow({**docs[0], "codec": "video/av1"}))
    await store.write(
        lambda tx: tx.put_source(source(docs[1]["source_id"], format="urn:x-nmos:format:data"))
    )
    expired = await store.write(lambda tx: tx.expired_allocations(1, 100))
    await store.write(lambda tx: tx.remove_objects([o.object_id for o in expired]))
    await store.write(lambda tx: tx.delete_flow(docs[3]["id"]))
    await store.write(lambda tx: tx.delete_source(docs[3]["source_id"]))
    assert_counters_match(cluster)

    # What the analytics reads show is those sums.
    usage = await store.read(lambda tx: tx.flow_usage(FlowFilter(), None, 100))
    figures = recount(cluster)["flows"]
    assert usage.totals.segments == sum(f[0] for f in figures.values())
    assert usage.totals.bytes == sum(f[2] for f in figures.values())
    await store.close()


async def test_a_batch_of_commands_touches_each_counter_row_once() -> None:
    cluster = FakeVastCluster(seed=2)
    store = await opened(cluster)
    docs = [flow() for _ in range(20)]

    def work(tx: Any) -> None:
        for n, doc in enumerate(docs):
            tx.put_source(source(doc["source_id"]))
            tx.put_flow(doc)
            seg = SegmentRecord(n * S, (n + 1) * S, new_id(), "x", {}, 0)
            obj = ObjectRecord(seg.object_id, None, None, None, True, doc["id"], {}, None)
            tx.add_segments(doc["id"], [seg], [obj], "now")

    await store.write(work)
    totals = rows(cluster, "totals")
    # One shard, one row per (kind, key): sources, the flows' group, external objects.
    assert len(totals) == 3 and len({r["shard"] for r in totals}) == 1
    assert_counters_match(cluster)
    await store.close()


async def test_a_size_learned_late_and_a_changed_init_object_are_counted() -> None:
    """Paths the services never take (sizes are known at the first registration, init
    objects never change), kept exact all the same."""
    cluster = FakeVastCluster(seed=3)
    store = await opened(cluster)
    first, second = flow(), flow()
    object_id, init, other_init = new_id(), new_id(), new_id()
    unsized = ObjectRecord(object_id, None, None, None, True, first["id"], {}, None)

    def work(tx: Any) -> None:
        for doc in (first, second):
            tx.put_source(source(doc["source_id"]))
            tx.put_flow(doc)
        tx.add_segments(first["id"], [SegmentRecord(0, S, object_id, "x", {}, 0)], [unsized], "s")
        tx.add_segments(second["id"], [SegmentRecord(0, S, object_id, "x", {}, 0)], [], "s")

    await store.write(work)
    sized = ObjectRecord(
        object_id, None, None, None, True, first["id"], {"init_object_id": init}, 900
    )
    await store.write(
        lambda tx: tx.add_segments(
            first["id"], [SegmentRecord(S, 2 * S, object_id, "x", {}, 0)], [sized], "s"
        )
    )
    assert_counters_match(cluster)
    moved = ObjectRecord(**{**sized.__dict__, "doc": {"init_object_id": other_init}})
    await store.write(lambda tx: tx.update_objects([moved]))
    assert_counters_match(cluster)
    users = await store.read(lambda tx: tx.object_flows(other_init, TagFilter(), None, 10))
    assert users == (sorted([first["id"], second["id"]]), None)
    await store.close()


# --- ordering helpers --------------------------------------------------------------------------


async def test_first_rows_and_distinct_values_are_exact_with_ties_and_any_order() -> None:
    cluster = FakeVastCluster(seed=9)
    store = await opened(cluster)
    rng = random.Random(9)
    # Queue-like keys: many ties at 0 (never leased), then a spread of later leases.
    keys = [0] * 150 + [rng.randrange(1, 400) for _ in range(250)]
    jobs = [MediaJob("delete", new_id(), f"b{i % 3}", i) for i in range(len(keys))]
    await store.write(lambda tx: tx.queue_media_jobs(jobs))
    session = cluster.connect(endpoint="http://vast.invalid")
    with session.transaction() as tx:
        table = Tables(tx, store.catalog)["media_jobs"]
        found = table.select(["object_id"], None, row_ids=True)
        table.update_each(found, [{"lease_until_ns": k} for k in keys])
    with session.transaction() as tx:
        table = Tables(tx, store.catalog)["media_jobs"]
        for want in (1, 10, 149, 150, 151, 300, 400, 500):
            for descending in (False, True):
                got = first_rows(
                    table, ["object_id"], None, "lease_until_ns", want, descending=descending
                )
                expected = sorted(keys, reverse=descending)[:want]
                assert got["lease_until_ns"].to_pylist() == expected, (want, descending)
        assert first_distinct(table, "storage_id", None, None) == ["b0", "b1", "b2"]
        assert first_distinct(table, "storage_id", None, 2, after="b0") == ["b1", "b2"]
        values = sorted(set(keys))
        assert first_distinct(table, "lease_until_ns", None, 25) == values[:25]
        assert first_distinct(table, "lease_until_ns", _.lease_until_ns > 0, 5) == values[1:6]
    await store.close()


async def test_distinct_values_past_a_thousand_come_in_runs() -> None:
    """An object used by 1,100 flows, or 1,100 webhooks with queued deliveries: each select
    excludes the values already seen, and about 975 such terms once overflowed the stack
    where the SDK resolves the predicate. Runs of at most MAX_EXCLUSIONS values keep them
    few; all_of nests what it combines as a balanced tree."""
    cluster = FakeVastCluster(seed=3)
    store = await opened(cluster)
    jobs = [MediaJob("delete", new_id(), "b0", 0) for _ in range(1100)]
    await store.write(lambda tx: tx.queue_media_jobs(jobs))
    ids = sorted(job.object_id for job in jobs)
    session = cluster.connect(endpoint="http://vast.invalid")
    with session.transaction() as tx:
        table = Tables(tx, store.catalog)["media_jobs"]
        assert first_distinct(table, "object_id", None, None) == ids
        assert first_distinct(table, "object_id", None, 1001) == ids[:1001]
        assert first_distinct(table, "object_id", None, 300, after=ids[99]) == ids[100:400]
        many = all_of(*[_.object_id != i for i in ids[:2000]])
        assert table.select(["object_id"], many).num_rows == 0
    await store.close()


# --- what the new hot paths ask of the cluster ------------------------------------------------


def delta(cluster: FakeVastCluster, before: Counter[str]) -> Counter[str]:
    now = Counter(cluster.requests)
    now.subtract(before)
    return now


async def test_webhook_queue_paths_are_bounded_whatever_the_queue_length() -> None:
    cluster = FakeVastCluster(seed=4)
    store = await opened(cluster)
    hook = new_id()
    # A queue of 3,000 events as queue_event leaves it, stored directly (quicker on the
    # double, whose selects scan in Python).
    await store.write(lambda tx: tx.queue_event(QueuedEvent(new_id(), {"n": 0}, {hook: 0}), 1))
    events = [new_id() for _ in range(1, 3000)]
    session = cluster.connect(endpoint="http://vast.invalid")
    with session.transaction() as tx:
        tables = Tables(tx, store.catalog)
        tables["webhook_events"].insert(
            [
                {"event_id": e, "payload": f'{{"n": {i}}}', "parts": 1, "remaining": 1}
                | {"queued_ns": 1}
                for i, e in enumerate(events, start=1)
            ]
        )
        tables["webhook_deliveries"].insert(
            [{"webhook_id": hook, "seq": i, "event_id": e} for i, e in enumerate(events, start=1)]
        )
    before = Counter(cluster.requests)
    assert await store.write(lambda tx: tx.queue_event(QueuedEvent(new_id(), {}, {hook: 3000}), 2))
    one = delta(cluster, before)
    assert (one["select"], one["insert"]) == (1, 2)  # dedup check; the event and its delivery

    before = Counter(cluster.requests)
    page = await store.read(lambda tx: tx.pending_deliveries(hook, 1500, 3001, 100))
    assert [(d.seq, d.payload) for d in page] == [(i, {"n": i}) for i in range(1500, 1600)]
    read = delta(cluster, before)
    assert read["select"] == 2 and read["rows_returned"] == 200

    before = Counter(cluster.requests)
    assert await store.read(lambda tx: tx.delivery_queues(hook)) == {hook: (0, 3000)}
    bounds = delta(cluster, before)
    assert bounds["select"] <= 12 and bounds["rows_returned"] <= 12 * 65, bounds

    before = Counter(cluster.requests)
    done = [Delivery(hook, d.seq, d.event_id, d.payload) for d in page]
    await store.write(lambda tx: tx.finish_deliveries(done))
    finish = delta(cluster, before)
    assert finish["select"] == 2 and finish["rows_returned"] == 200
    await store.close()


async def test_queueing_an_event_whose_commit_landed_but_seemed_to_fail_answers_true() -> None:
    """The webhooks service moves its positions on only for events reported queued; a retry
    of a landed attempt must say so, or the next event would take the same positions."""
    cluster = FakeVastCluster(seed=8)
    store = await opened(cluster)
    hook = new_id()
    first = QueuedEvent(new_id(), {"n": 1}, {hook: 0})
    cluster.inject("commit", lost_connection(), after=True)
    assert await store.write(lambda tx: tx.queue_event(first, 1))
    # A real redelivery comes with later positions: not queued again.
    assert not await store.write(
        lambda tx: tx.queue_event(QueuedEvent(first.event_id, {}, {hook: 1}), 2)
    )
    second = QueuedEvent(new_id(), {"n": 2}, {hook: 1})
    assert await store.write(lambda tx: tx.queue_event(second, 3))
    pending = await store.read(lambda tx: tx.pending_deliveries(hook, 0, 2, 10))
    assert [(d.seq, d.payload) for d in pending] == [(0, {"n": 1}), (1, {"n": 2})]
    await store.close()


async def test_deleting_a_chunk_of_a_long_flow_and_analytics_never_scan_segments() -> None:
    cluster = FakeVastCluster(seed=6)
    store = await opened(cluster)
    doc = flow()
    total = 5000
    await store.write(lambda tx: (tx.put_source(source(doc["source_id"])), tx.put_flow(doc)))
    object_id = new_id()
    external = ObjectRecord(object_id, None, None, None, True, doc["id"], {}, None)
    for offset in range(0, total, 1000):
        batch = [
            SegmentRecord(a, b, object_id, str(TimeRange.from_half_open(a, b)), {}, 0)
            for a, b in ((i * 2 * S, (i + 1) * 2 * S) for i in range(offset, offset + 1000))
        ]
        objects = [external] if offset == 0 else []
        await store.write(lambda tx, b=batch, o=objects: tx.add_segments(doc["id"], b, o, "s"))
    # The first 250 segments, as a deletion request's chunk takes them.
    everything = TimeRange.eternity()
    before = Counter(cluster.requests)

    def chunk(tx: Any) -> None:
        segments = tx.segments_within(doc["id"], everything, object_id=None, limit=251)
        tx.delete_segments(doc["id"], segments[:250], "later")
        assert tx.unreferenced_objects([object_id]) == []

    await store.write(chunk)
    deleted = delta(cluster, before)
    assert deleted["rows_returned segments"] <= 3 * 251 + 256, deleted
    assert deleted["select"] <= 25, deleted
    assert str(await store.read(lambda tx: tx.flow_timerange(doc["id"]))) == (
        f"[500:0_{total * 2}:0)"
    )

    before = Counter(cluster.requests)
    # One whole hour from its bucket, the few seconds around it from the segments.
    window = (3597 * S, 7203 * S)
    await store.read(lambda tx: tx.catalog_counts())
    await store.read(lambda tx: tx.storage_usage())
    await store.read(lambda tx: tx.flow_usage(FlowFilter(), None, 100))
    await store.read(lambda tx: tx.flow_coverage(FlowFilter(), None, 100, None, 100))
    page = await store.read(lambda tx: tx.flow_coverage(FlowFilter(), window, 10, None, 10))
    assert page.flows[0].segments == 1 + 1 + 1800 + 2  # reaching in, edge, hour, edge
    reads = delta(cluster, before)
    # Only the window's two partial edge hours (here a few seconds each) read segments.
    assert reads["rows_returned segments"] <= 4, reads
    await store.close()


def _hidden(doc: dict[str, Any]) -> DeletedFlowRecord:
    return DeletedFlowRecord(
        flow=doc,
        deleted="2026-01-02T00:00:00.000000Z",
        deleted_ns=1,
        purge_after="2026-01-03T00:00:00.000000Z",
        purge_after_ns=2,
    )


async def test_counters_follow_soft_delete_restore_and_purge() -> None:
    """docs/ext-soft-delete.md: a hidden flow leaves the totals, comes back exactly, and its
    runs, buckets and init references go with its purge (a commit that seems to fail, once)."""
    rng = random.Random(9)
    cluster = FakeVastCluster(seed=9)
    store = await opened(cluster)
    docs = await fill(store, rng, flows=3)
    before = counted(cluster)
    await store.write(lambda tx: tx.hide_flow(_hidden(docs[0])))
    assert_counters_match(cluster)  # its segments' runs and buckets are kept, hidden
    cluster.inject("commit", lost_connection(), after=True)
    await store.write(lambda tx: tx.restore_flow(docs[0]))
    assert counted(cluster) == before
    assert_counters_match(cluster)

    flow_id = docs[1]["id"]
    cluster.inject("commit", lost_connection(), after=True)
    await store.write(lambda tx: tx.hide_flow(_hidden(docs[1])))
    assert_counters_match(cluster)
    cluster.inject("commit", conflict("concurrent writer"))
    await store.write(lambda tx: tx.start_purge(flow_id, new_id()))
    while await store.write(lambda tx: tx.purge_segments(flow_id, 20)):
        pass
    await store.write(lambda tx: tx.forget_deleted_flow(flow_id))
    assert_counters_match(cluster)
    await store.close()
