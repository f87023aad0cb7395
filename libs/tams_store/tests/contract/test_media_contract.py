"""The media part of the store port (segments, objects, extent, outcomes): every adapter."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tams_schema.envelopes import Outcome, TamsEvent
from tams_schema.timerange import TimeRange
from tams_store import AccessFilter, Store, TagFilter, cursor
from tams_store.port import InvalidPageKey, ObjectAllocation, ObjectRecord, SegmentRecord

from .docs import flow, new_id, source

SECOND = 1_000_000_000


async def new_flow(store: Store, **extra: Any) -> dict[str, Any]:
    doc = flow(**extra)

    def work(tx: Any) -> None:
        tx.put_source(source(doc["source_id"]))
        tx.put_flow(doc)

    await store.write(work)
    return doc


def segment(start: int, end: int, object_id: str | None = None, **doc: Any) -> SegmentRecord:
    timerange = str(TimeRange.from_half_open(start, end))
    return SegmentRecord(start, end, object_id or new_id(), timerange, doc, created_ns=1)


def external(segment: SegmentRecord, flow_id: str) -> ObjectRecord:
    return ObjectRecord(
        object_id=segment.object_id,
        allocated_flow_id=None,
        storage_id=None,
        content_type=None,
        registered=True,
        first_referenced_by_flow=flow_id,
        doc={"timerange": segment.timerange, "get_urls": [{"url": "http://x", "label": "x"}]},
    )


async def add(store: Store, flow_id: str, segments: list[SegmentRecord], stamp: str = "s") -> None:
    objects = [external(s, flow_id) for s in segments]
    await store.write(lambda tx: tx.add_segments(flow_id, segments, objects, stamp))


async def all_pages(
    store: Store,
    flow_id: str,
    *,
    timerange: TimeRange | None = None,
    object_id: str | None = None,
    reverse: bool = False,
    limit: int = 7,
) -> list[int]:
    starts: list[int] = []
    page: str | None = None
    while True:
        result = await store.read(
            lambda tx, p=page: tx.list_segments(
                flow_id,
                timerange=timerange,
                object_id=object_id,
                reverse=reverse,
                page=p,
                limit=limit,
            )
        )
        assert len(result.items) <= limit
        starts += [s.start for s in result.items]
        if result.next_key is None:
            return starts
        page = result.next_key


def irregular_segments(count: int, seed: int) -> list[SegmentRecord]:
    """Segments of 1 to 3 s with gaps of up to 20 s now and then."""
    rng = random.Random(seed)
    at = 10 * SECOND
    made = []
    for _ in range(count):
        if rng.random() < 0.1:
            at += rng.randint(1, 20) * SECOND
        duration = rng.choice([1, 2, 3]) * SECOND
        made.append(segment(at, at + duration))
        at += duration
    return made


async def test_segment_pages_visit_every_segment_once_in_order(store: Store) -> None:
    doc = await new_flow(store)
    segments = irregular_segments(120, seed=1)
    for offset in range(0, len(segments), 25):  # several registrations, like live ingest
        await add(store, doc["id"], segments[offset : offset + 25])
    starts = [s.start for s in segments]
    assert await all_pages(store, doc["id"]) == starts
    assert await all_pages(store, doc["id"], reverse=True, limit=11) == starts[::-1]
    assert await all_pages(store, doc["id"], limit=1000) == starts


@pytest.mark.parametrize("reverse", [False, True])
async def test_segments_overlapping_a_timerange(store: Store, reverse: bool) -> None:
    doc = await new_flow(store)
    segments = irregular_segments(80, seed=2)
    await add(store, doc["id"], segments)
    rng = random.Random(3)
    for _ in range(15):
        a, b = sorted(rng.sample(range(0, 250), 2))
        query = TimeRange.from_half_open(a * SECOND, b * SECOND + rng.randint(0, SECOND))
        q_start, q_end = query.half_open() or (0, 0)
        expected = [s.start for s in segments if s.start < q_end and s.end > q_start]
        got = await all_pages(store, doc["id"], timerange=query, reverse=reverse, limit=5)
        assert got == (expected[::-1] if reverse else expected), str(query)


async def test_segment_listing_edges(store: Store) -> None:
    doc = await new_flow(store)
    first, second = segment(0, 2 * SECOND), segment(2 * SECOND, 4 * SECOND)
    await add(store, doc["id"], [first, second])

    async def starts(timerange: TimeRange | None) -> list[int]:
        return await all_pages(store, doc["id"], timerange=timerange)

    # Touching is not overlapping; an instant inside a segment finds it.
    assert await starts(TimeRange.parse("[2:0_2:0]")) == [2 * SECOND]
    assert await starts(TimeRange.parse("[0:0_2:0)")) == [0]
    assert await starts(TimeRange.parse("(1:999999998_4:0)")) == [0, 2 * SECOND]
    assert await starts(TimeRange.never()) == []
    assert await starts(TimeRange.parse("[4:0_")) == []
    assert await all_pages(store, new_id()) == []
    only = await all_pages(store, doc["id"], object_id=second.object_id)
    assert only == [2 * SECOND]
    page = await store.read(
        lambda tx: tx.list_segments(
            doc["id"], timerange=None, object_id=None, reverse=False, page=None, limit=1
        )
    )
    item = page.items[0]
    assert (item.start, item.end, item.object_id, item.timerange) == (
        0,
        2 * SECOND,
        first.object_id,
        first.timerange,
    )
    # Not base64 JSON; ["x"], [true], [1.5] (not a time); [2**70] (not 64 bits).
    for key in ("garbage!", "WyJ4Il0", "W3RydWVd", "WzEuNV0", cursor.encode([2**70])):
        with pytest.raises(InvalidPageKey):
            await store.read(
                lambda tx, k=key: tx.list_segments(
                    doc["id"], timerange=None, object_id=None, reverse=False, page=k, limit=1
                )
            )


async def test_object_filter_finds_sparse_segments(store: Store) -> None:
    doc = await new_flow(store)
    shared = new_id()
    segments = [
        segment(i * SECOND, (i + 1) * SECOND, shared if i % 37 == 5 else None) for i in range(300)
    ]
    await add(store, doc["id"], segments[:1])  # the shared object registered once ...
    await store.write(
        lambda tx: tx.add_segments(doc["id"], segments[1:], [external(segments[1], doc["id"])], "s")
    )
    expected = [s.start for s in segments if s.object_id == shared]
    assert await all_pages(store, doc["id"], object_id=shared, limit=2) == expected


async def test_flow_extent_and_timerange(store: Store) -> None:
    doc = await new_flow(store)
    assert await store.read(lambda tx: tx.flow_timerange(doc["id"])) == TimeRange.never()
    await add(store, doc["id"], [segment(10 * SECOND, 12 * SECOND)], stamp="first")
    await add(store, doc["id"], [segment(2 * SECOND, 3 * SECOND)], stamp="second")
    got = await store.read(lambda tx: tx.get_flow(doc["id"]))
    assert got is not None and got["segments_updated"] == "second"
    whole = await store.read(lambda tx: tx.flow_timerange(doc["id"]))
    assert whole == TimeRange.from_half_open(2 * SECOND, 12 * SECOND)
    inside = await store.read(
        lambda tx: tx.flow_timerange(doc["id"], TimeRange.parse("[2:500000000_11:0)"))
    )
    assert inside == TimeRange.from_half_open(2 * SECOND, 12 * SECOND)
    gap = await store.read(lambda tx: tx.flow_timerange(doc["id"], TimeRange.parse("[4:0_9:0)")))
    assert gap == TimeRange.never()
    assert await store.read(lambda tx: tx.flow_timerange(new_id())) == TimeRange.never()
    # A replace of the flow's metadata keeps what the segments own.
    await store.write(lambda tx: tx.put_flow({**doc, "label": "renamed"}))
    got = await store.read(lambda tx: tx.get_flow(doc["id"]))
    assert got is not None and got["segments_updated"] == "second" and got["label"] == "renamed"
    whole = await store.read(lambda tx: tx.flow_timerange(doc["id"]))
    assert whole == TimeRange.from_half_open(2 * SECOND, 12 * SECOND)


async def test_overlapping_segments(store: Store) -> None:
    doc = await new_flow(store)
    await add(store, doc["id"], [segment(i * 2 * SECOND, (i + 1) * 2 * SECOND) for i in range(10)])

    async def clash(start: float, end: float) -> list[tuple[int, int]]:
        s, e = int(start * SECOND), int(end * SECOND)
        result: list[tuple[int, int]] = await store.write(
            lambda tx: tx.overlapping_segments(doc["id"], s, e)
        )
        return result

    assert await clash(20, 22) == []  # after the end, touching
    assert await clash(-2, 0) == []  # before the start, touching
    assert await clash(19.5, 21) == [(18 * SECOND, 20 * SECOND)]
    assert await clash(3, 9) == [(2 * SECOND, 4 * SECOND)]  # the earliest of several
    assert await clash(4, 4.000000001) == [(4 * SECOND, 6 * SECOND)]
    assert await store.write(lambda tx: tx.overlapping_segments(new_id(), 0, SECOND)) == []


async def test_writes_are_visible_later_in_the_same_transaction(store: Store) -> None:
    """A batch of commands shares one transaction: each must see the ones before it."""
    doc = flow()
    first = segment(0, SECOND)

    def work(tx: Any) -> tuple[Any, ...]:
        tx.put_source(source(doc["source_id"]))
        tx.put_flow(doc)
        seen_flow = tx.get_flow(doc["id"])
        tx.add_segments(doc["id"], [first], [external(first, doc["id"])], "s")
        clash = tx.overlapping_segments(doc["id"], SECOND // 2, 2 * SECOND)
        objects = tx.get_objects([first.object_id])
        tx.put_flow({**doc, "label": "again"})
        relabelled = tx.get_flow(doc["id"])
        return seen_flow, clash, objects, relabelled

    seen_flow, clash, objects, relabelled = await store.write(work)
    assert seen_flow is not None and seen_flow["id"] == doc["id"]
    assert clash == [(0, SECOND)]
    assert objects[first.object_id].registered
    assert relabelled["label"] == "again" and relabelled["segments_updated"] == "s"


async def test_objects_allocation_and_registration(store: Store) -> None:
    doc = await new_flow(store)
    ids = [new_id() for _ in range(3)]
    allocations = [ObjectAllocation(i, doc["id"], "storage-1", "video/mp2t", 5) for i in ids]
    await store.write(lambda tx: tx.allocate_objects(allocations))
    assert await store.write(lambda tx: tx.existing_object_ids([*ids, new_id()])) == set(ids)
    known = await store.read(lambda tx: tx.get_objects([ids[0], new_id()]))
    assert list(known) == [ids[0]]
    record = known[ids[0]]
    assert (record.allocated_flow_id, record.storage_id, record.content_type) == (
        doc["id"],
        "storage-1",
        "video/mp2t",
    )
    assert not record.registered and record.controlled_storage_ids == ["storage-1"]

    seg = segment(0, SECOND, ids[0])
    registered = ObjectRecord(
        object_id=ids[0],
        allocated_flow_id=doc["id"],
        storage_id="storage-1",
        content_type="video/mp2t",
        registered=True,
        first_referenced_by_flow=doc["id"],
        doc={"timerange": seg.timerange, "key_frame_count": 3},
    )
    await store.write(lambda tx: tx.add_segments(doc["id"], [seg], [registered], "s"))
    after = (await store.read(lambda tx: tx.get_objects([ids[0]])))[ids[0]]
    assert after.registered and after.first_referenced_by_flow == doc["id"]
    assert after.storage_id == "storage-1" and after.doc["key_frame_count"] == 3
    assert await store.read(lambda tx: tx.get_objects([])) == {}


async def test_object_flows_pages_and_tag_filter(store: Store) -> None:
    shared = new_id()
    flows = [await new_flow(store, tags={"n": str(i % 2)}) for i in range(5)]
    for i, doc in enumerate(flows):
        seg = segment(i * SECOND, (i + 1) * SECOND, shared)
        objects = [external(seg, doc["id"])] if i == 0 else []
        await store.write(lambda tx, d=doc, s=seg, o=objects: tx.add_segments(d["id"], [s], o, "s"))
    expected = sorted(d["id"] for d in flows)
    found: list[str] = []
    page: str | None = None
    while True:
        ids, page = await store.read(lambda tx, p=page: tx.object_flows(shared, TagFilter(), p, 2))
        found += ids
        if page is None:
            break
    assert found == expected
    odd, _ = await store.read(
        lambda tx: tx.object_flows(shared, TagFilter(values={"n": ["1"]}), None, 10)
    )
    assert odd == sorted(d["id"] for i, d in enumerate(flows) if i % 2)
    assert await store.read(lambda tx: tx.object_flows(new_id(), TagFilter(), None, 10)) == (
        [],
        None,
    )
    readable = TagFilter(access=AccessFilter(classes=("news",)))
    assert await store.read(lambda tx: tx.object_flows(shared, readable, None, 10)) == ([], None)
    await store.write(
        lambda tx: tx.put_flow({**flows[3], "tags": {"n": "1", "auth_classes": ["news"]}})
    )
    news, _ = await store.read(lambda tx: tx.object_flows(shared, readable, None, 10))
    assert news == [flows[3]["id"]]


async def test_delete_flow_removes_its_segments(store: Store) -> None:
    doc, other = await new_flow(store), await new_flow(store)
    shared = new_id()
    segs = [segment(i * SECOND, (i + 1) * SECOND, shared) for i in range(3)]
    await add(store, doc["id"], segs[:1])
    await store.write(lambda tx: tx.add_segments(doc["id"], segs[1:], [], "s"))
    await store.write(
        lambda tx: tx.add_segments(other["id"], [segment(0, SECOND, shared)], [], "s")
    )
    await store.write(lambda tx: tx.delete_flow(doc["id"]))
    assert await store.read(lambda tx: tx.get_flow(doc["id"])) is None
    assert await all_pages(store, doc["id"]) == []
    ids, _ = await store.read(lambda tx: tx.object_flows(shared, TagFilter(), None, 10))
    assert ids == [other["id"]]
    assert await all_pages(store, other["id"]) == [0]


async def test_sources_and_service_info(store: Store) -> None:
    doc = await new_flow(store, label="x")
    assert await store.write(lambda tx: tx.count_flows_of_source(doc["source_id"])) == 1
    await store.write(lambda tx: tx.delete_flow(doc["id"]))
    await store.write(lambda tx: tx.delete_source(doc["source_id"]))
    assert await store.read(lambda tx: tx.get_source(doc["source_id"])) is None
    assert await store.read(lambda tx: tx.get_service_info()) == {}
    await store.write(lambda tx: tx.set_service_info({"name": "a"}))
    await store.write(lambda tx: tx.set_service_info({"name": "b", "description": "é"}))
    assert await store.read(lambda tx: tx.get_service_info()) == {"name": "b", "description": "é"}


async def test_large_outcomes_round_trip(store: Store) -> None:
    segments = [{"timerange": f"[{i}:0_{i + 1}:0)", "note": "ü" * 50} for i in range(2000)]
    outcome = Outcome(
        status=201,
        events=[TamsEvent(key="k", event_type="flows/segments_added", event={"s": segments})],
    )
    command_id = new_id()
    await store.write(lambda tx: tx.record_outcome(command_id, outcome))
    assert await store.write(lambda tx: tx.recorded_outcome(command_id)) == outcome
