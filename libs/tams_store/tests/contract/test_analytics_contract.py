"""The analytics part of the store port: exact figures, whatever order things happen in.

Each test builds data through the port's write side and compares the analytics figures
with what it built (a brute-force model kept by the test).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, replace
from typing import Any

from tams_schema.timerange import TimeRange
from tams_store import Store
from tams_store.analytics import FlowFilter, UsageFigures
from tams_store.port import ObjectAllocation, ObjectRecord, SegmentRecord

from .docs import flow, new_id, source

S = 1_000_000_000
VIDEO = "urn:x-nmos:format:video"
AUDIO = "urn:x-nmos:format:audio"
BACKEND = "backend-a"


@dataclass
class Model:
    """What the test wrote, to recompute every figure by brute force."""

    flows: dict[str, dict[str, Any]] = field(default_factory=dict)
    segments: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    sizes: dict[str, int | None] = field(default_factory=dict)

    def usage(self, flow_ids: list[str]) -> UsageFigures:
        total = UsageFigures()
        for flow_id in flow_ids:
            segs = self.segments.get(flow_id, [])
            sizes = [self.sizes.get(o) for _, _, o in segs]
            total = total + UsageFigures(
                flows=1,
                segments=len(segs),
                duration_ns=sum(e - s for s, e, _ in segs),
                bytes=sum(z or 0 for z in sizes),
                segments_without_size=sum(z is None for z in sizes),
            )
        return total

    def runs(self, flow_id: str) -> list[tuple[int, int]]:
        runs: list[tuple[int, int]] = []
        for start, end, _ in sorted(self.segments.get(flow_id, [])):
            if runs and runs[-1][1] == start:
                runs[-1] = (runs[-1][0], end)
            else:
                runs.append((start, end))
        return runs


async def make_flow(store: Store, model: Model, **extra: Any) -> str:
    doc = flow(**extra)

    def work(tx: Any) -> None:
        if tx.get_source(doc["source_id"]) is None:
            tx.put_source(source(doc["source_id"], format=doc["format"]))
        tx.put_flow(doc)

    await store.write(work)
    model.flows[doc["id"]] = doc
    return str(doc["id"])


async def register(
    store: Store,
    model: Model,
    flow_id: str,
    bounds: list[tuple[int, int]],
    size: int | None = 1000,
    reuse: str | None = None,
) -> list[str]:
    """Allocate (unless reusing), then register one object per segment, like the segments
    service does: segments first, then the objects' first registration."""
    records: list[SegmentRecord] = []
    objects: list[ObjectRecord] = []
    allocations: list[ObjectAllocation] = []
    for start, end in bounds:
        object_id = reuse or new_id()
        if reuse is None:
            allocations.append(ObjectAllocation(object_id, flow_id, BACKEND, "video/mp2t", 0))
            objects.append(
                ObjectRecord(object_id, flow_id, BACKEND, "video/mp2t", True, flow_id, {}, size)
            )
            model.sizes[object_id] = size
        tr = str(TimeRange.from_half_open(start, end))
        records.append(SegmentRecord(start, end, object_id, tr, {}, 0))
        model.segments.setdefault(flow_id, []).append((start, end, object_id))

    def work(tx: Any) -> None:
        if allocations:
            tx.allocate_objects(allocations)
        tx.add_segments(flow_id, records, objects, "2026-01-01T00:00:00.000000Z")

    await store.write(work)
    return [r.object_id for r in records]


async def usage_of(store: Store, flows: FlowFilter) -> tuple[UsageFigures, dict[str, Any]]:
    page = await store.read(lambda tx: tx.flow_usage(flows, None, 1000))
    return page.totals, {f.flow_id: f for f in page.flows}


async def test_usage_counts_segments_duration_and_bytes(store: Store) -> None:
    model = Model()
    video = await make_flow(store, model)
    audio = await make_flow(
        store, model, format=AUDIO, codec="audio/aac", essence_parameters={"sample_rate": 48000}
    )
    await register(store, model, video, [(0, 2 * S), (2 * S, 4 * S)], size=1500)
    await register(store, model, audio, [(0, S)], size=None)

    totals, flows = await usage_of(store, FlowFilter())
    assert totals == model.usage([video, audio])
    assert flows[video].usage == UsageFigures(1, 2, 4 * S, 3000, 0)
    assert flows[video].extent == (0, 4 * S)
    assert flows[audio].usage == UsageFigures(1, 1, S, 0, 1)

    by_format, _ = await usage_of(store, FlowFilter(format=AUDIO))
    assert by_format == model.usage([audio])
    by_source, _ = await usage_of(store, FlowFilter(source_id=model.flows[video]["source_id"]))
    assert by_source == model.usage([video])
    one, listed = await usage_of(store, FlowFilter(flow_id=video, format=AUDIO))
    assert one == UsageFigures() and listed == {}


async def test_reused_objects_count_for_every_segment_but_once_in_storage(store: Store) -> None:
    model = Model()
    first, second = await make_flow(store, model), await make_flow(store, model)
    (object_id,) = await register(store, model, first, [(0, S)], size=700)
    await register(store, model, second, [(10 * S, 11 * S)], reuse=object_id)
    totals, _ = await usage_of(store, FlowFilter())
    assert totals.bytes == 1400 and totals.segments == 2
    backends = await store.read(lambda tx: tx.storage_usage())
    assert [(b.storage_id, b.objects, b.bytes) for b in backends] == [(BACKEND, 1, 700)]


async def test_storage_usage_counts_allocated_and_external_objects(store: Store) -> None:
    model = Model()
    flow_id = await make_flow(store, model)
    await register(store, model, flow_id, [(0, S)], size=10)
    external = ObjectRecord(new_id(), None, None, None, True, flow_id, {"get_urls": []})
    unregistered = [ObjectAllocation(new_id(), flow_id, BACKEND, "video/mp2t", 0)] * 1

    def work(tx: Any) -> None:
        tx.allocate_objects(unregistered)
        seg = SegmentRecord(5 * S, 6 * S, external.object_id, "[5:0_6:0)", {}, 0)
        tx.add_segments(flow_id, [seg], [external], "2026-01-01T00:00:00.000000Z")

    await store.write(work)
    backends = {b.storage_id: b for b in await store.read(lambda tx: tx.storage_usage())}
    assert backends[BACKEND].objects == 1 and backends[BACKEND].bytes == 10
    assert backends[BACKEND].allocated_unregistered == 1
    assert backends[None].objects == 1 and backends[None].objects_without_size == 1
    _, flows = await usage_of(store, FlowFilter(flow_id=flow_id))
    assert flows[flow_id].usage.segments_without_size == 1


async def test_storage_figures_follow_controlled_copies(store: Store) -> None:
    """An object counts in every backend holding a controlled copy of it: a copy made onto
    another backend counts there, a deleted instance leaves its backend, and an external
    object copied in stops being external."""
    model = Model()
    flow_id = await make_flow(store, model)
    (object_id,) = await register(store, model, flow_id, [(0, S)], size=700)
    external = ObjectRecord(new_id(), None, None, None, True, flow_id, {"get_urls": []})

    def add_external(tx: Any) -> None:
        seg = SegmentRecord(5 * S, 6 * S, external.object_id, "[5:0_6:0)", {}, 0)
        tx.add_segments(flow_id, [seg], [external], "2026-01-01T00:00:00.000000Z")

    await store.write(add_external)

    async def copies(object_id: str, backends: list[str]) -> None:
        def work(tx: Any) -> None:
            (record,) = tx.get_objects([object_id]).values()
            tx.update_objects(
                [replace(record, doc={**record.doc, "controlled_storage_ids": backends})]
            )

        await store.write(work)

    async def figures() -> dict[str | None, tuple[int, int, int]]:
        found = await store.read(lambda tx: tx.storage_usage())
        return {
            b.storage_id: (b.objects, b.bytes, b.objects_without_size) for b in found if b.objects
        }

    assert await figures() == {BACKEND: (1, 700, 0), None: (1, 0, 1)}
    await copies(object_id, [BACKEND, "backend-b"])
    await copies(external.object_id, ["backend-b"])
    assert await figures() == {BACKEND: (1, 700, 0), "backend-b": (2, 700, 1)}
    await copies(object_id, ["backend-b"])
    assert await figures() == {"backend-b": (2, 700, 1)}
    # A change that leaves the copies alone moves nothing.
    await copies(object_id, ["backend-b"])
    assert await figures() == {"backend-b": (2, 700, 1)}
    await store.write(lambda tx: tx.remove_objects([object_id, external.object_id]))
    assert await figures() == {}


async def test_catalog_counts_follow_creates_replaces_and_deletes(store: Store) -> None:
    model = Model()
    keep = await make_flow(store, model)
    change = await make_flow(store, model)
    gone = await make_flow(store, model, codec="video/h265")
    await register(store, model, change, [(0, S)], size=5)
    await register(store, model, gone, [(0, S), (S, 2 * S)], size=5)
    # A replace that changes the codec moves the flow and its figures to the new group.
    await store.write(lambda tx: tx.put_flow({**model.flows[change], "codec": "video/h265"}))
    await store.write(lambda tx: tx.delete_flow(gone))
    await store.write(lambda tx: tx.delete_source(model.flows[gone]["source_id"]))
    counts = await store.read(lambda tx: tx.catalog_counts())
    assert counts.sources_by_format == {VIDEO: 2}
    groups = {(c.format, c.codec): c.usage for c in counts.usage_by_codec}
    assert groups == {
        (VIDEO, "video/h264"): model.usage([keep]),
        (VIDEO, "video/h265"): model.usage([change]),
    }


async def test_coverage_and_gaps_whatever_order_segments_arrive_in(store: Store) -> None:
    model = Model()
    flow_id = await make_flow(store, model)
    rng = random.Random(7)
    slots = list(range(40))
    rng.shuffle(slots)
    chosen = sorted(slots[:30])
    rng.shuffle(chosen)
    # Registered one or a few at a time, out of order: runs extend, join and start.
    while chosen:
        batch, chosen = chosen[:3], chosen[3:]
        await register(store, model, flow_id, [(i * S, (i + 1) * S) for i in batch])
    runs = model.runs(flow_id)
    page = await store.read(
        lambda tx: tx.flow_coverage(FlowFilter(flow_id=flow_id), None, 5, None, 10)
    )
    (cov,) = page.flows
    assert cov.segments == 30 and cov.covered_ns == 30 * S
    assert cov.extent == (runs[0][0], runs[-1][1])
    assert cov.gap_count == len(runs) - 1
    all_gaps = [(a[1], b[0]) for a, b in itertools.pairwise(runs)]
    assert cov.gaps == all_gaps[:5]
    assert cov.gap_ns == sum(e - s for s, e in all_gaps)


async def test_coverage_inside_a_window(store: Store) -> None:
    model = Model()
    flow_id = await make_flow(store, model)
    # [0,10) [10,20) gap [30,40) gap [50,60)
    await register(store, model, flow_id, [(0, 10 * S), (10 * S, 20 * S), (30 * S, 40 * S)])
    await register(store, model, flow_id, [(50 * S, 60 * S)])

    async def window(start: int, end: int) -> Any:
        page = await store.read(
            lambda tx: tx.flow_coverage(FlowFilter(flow_id=flow_id), (start, end), 10, None, 10)
        )
        return page.flows[0]

    cov = await window(15 * S, 55 * S)
    assert cov.segments == 3  # [10,20) [30,40) [50,60) overlap the window
    assert cov.extent == (15 * S, 55 * S)
    assert cov.covered_ns == 5 * S + 10 * S + 5 * S
    assert cov.gaps == [(20 * S, 30 * S), (40 * S, 50 * S)] and cov.gap_ns == 20 * S
    inside_gap = await window(21 * S, 29 * S)
    assert inside_gap.segments == 0 and inside_gap.extent is None and inside_gap.gap_count == 0
    one_run = await window(2 * S, 18 * S)
    assert (one_run.segments, one_run.covered_ns, one_run.gap_count) == (2, 16 * S, 0)


async def test_deleting_a_flow_removes_its_figures(store: Store) -> None:
    model = Model()
    keep, gone = await make_flow(store, model), await make_flow(store, model)
    await register(store, model, keep, [(0, S)], size=3)
    await register(store, model, gone, [(0, S), (2 * S, 3 * S)], size=4)
    await store.write(lambda tx: tx.delete_flow(gone))
    totals, flows = await usage_of(store, FlowFilter())
    assert totals == model.usage([keep]) and set(flows) == {keep}
    page = await store.read(lambda tx: tx.flow_coverage(FlowFilter(flow_id=gone), None, 5, None, 5))
    assert page.flows == []


async def test_usage_pages_visit_every_flow_once(store: Store) -> None:
    model = Model()
    ids = sorted([await make_flow(store, model) for _ in range(7)])
    seen: list[str] = []
    page_key: str | None = None
    while True:
        page = await store.read(
            lambda tx, k=page_key: tx.flow_usage(FlowFilter(), k, 3)  # type: ignore[misc]
        )
        seen += [f.flow_id for f in page.flows]
        assert page.totals.flows == 7
        if page.next_key is None:
            break
        page_key = page.next_key
    assert seen == ids


async def test_segment_counts_in_random_windows(store: Store) -> None:
    """Windows across hour boundaries, before zero, inside a segment, unbounded."""
    model = Model()
    flow_id = await make_flow(store, model)
    rng = random.Random(3)
    # 10-minute segments with random gaps, from 5 hours before zero to 5 hours after.
    starts = sorted(rng.sample(range(-30, 30), 45))
    await register(store, model, flow_id, [(k * 600 * S, (k + 1) * 600 * S) for k in starts])
    hour = 3600 * S
    windows = [(rng.randrange(-6 * hour, 6 * hour), rng.randrange(1, 4 * hour)) for _ in range(40)]
    windows += [(-(2**63), 2**63 - 1 + 2**63), (-(2**63), 1), (7 * S, 1)]
    for start, length in windows:
        end = min(start + length, 2**63 - 1)
        expected = sum(1 for s, e, _ in model.segments[flow_id] if s < end and e > start)
        page = await store.read(
            lambda tx, w=(start, end): tx.flow_coverage(FlowFilter(flow_id=flow_id), w, 0, None, 1)
        )
        assert page.flows[0].segments == expected, (start, end)
