"""Soft-deleted flows (docs/ext-soft-delete.md): hidden from every read, kept whole, back
exactly as they were, or purged in chunks. Every adapter must pass these."""

from __future__ import annotations

from typing import Any

from tams_schema.timerange import TimeRange
from tams_store import FlowQuery, Store
from tams_store.analytics import FlowFilter
from tams_store.port import DeletedFlowRecord, TagFilter

from .docs import flow, new_id, source, stamp
from .test_analytics_contract import BACKEND, Model, make_flow, register, usage_of

S = 1_000_000_000


def hidden(doc: dict[str, Any], at: int, *, with_source: dict[str, Any] | None = None) -> Any:
    return DeletedFlowRecord(
        flow=doc,
        deleted=stamp(at),
        deleted_ns=at * S,
        purge_after=stamp(at + 60),
        purge_after_ns=(at + 60) * S,
        deleted_by="alice",
        timerange="[0:0_3:0)",
        source=with_source,
    )


async def hide(store: Store, doc: dict[str, Any], at: int = 10) -> None:
    def work(tx: Any) -> None:
        src = tx.get_source(doc["source_id"])
        tx.hide_flow(hidden(doc, at, with_source=src))
        tx.delete_source(doc["source_id"])

    await store.write(work)


async def test_a_hidden_flow_is_gone_from_every_read_and_its_objects_stay(store: Store) -> None:
    model = Model()
    keep = await make_flow(store, model)
    gone = await make_flow(store, model, tags={"team": "news"})
    collector = flow(flow_collection=[{"id": gone, "role": "v"}, {"id": keep, "role": "a"}])
    await store.write(lambda tx: tx.put_source(source(collector["source_id"])))
    await store.write(lambda tx: tx.put_flow(collector))
    objects = await register(store, model, gone, [(0, S), (S, 2 * S), (2 * S, 3 * S)])
    shared = objects[0]
    await register(store, model, keep, [(0, S)], reuse=shared)
    await hide(store, model.flows[gone])

    def reads(tx: Any) -> dict[str, Any]:
        return {
            "flow": tx.get_flow(gone),
            "source": tx.get_source(model.flows[gone]["source_id"]),
            "listed": [f["id"] for f in tx.list_flows(FlowQuery()).items],
            "tagged": tx.list_flows(FlowQuery(tags=TagFilter(values={"team": ["news"]}))).items,
            "segments": tx.list_segments(
                gone, timerange=None, object_id=None, reverse=False, page=None, limit=10
            ).items,
            "timerange": tx.flow_timerange(gone),
            "collector": tx.get_flow(collector["id"]),
            "shared_flows": tx.object_flows(shared, TagFilter(), None, 10)[0],
            "only_flows": tx.object_flows(objects[1], TagFilter(), None, 10)[0],
            "objects": tx.get_objects(objects),
        }

    seen = await store.read(reads)
    assert seen["flow"] is None and seen["source"] is None
    assert gone not in seen["listed"] and keep in seen["listed"]
    assert seen["tagged"] == [] and seen["segments"] == []
    assert seen["timerange"] == TimeRange.never()
    assert seen["collector"]["flow_collection"] == [{"id": keep, "role": "a"}]
    assert seen["shared_flows"] == [keep] and seen["only_flows"] == []
    # Still referenced by the hidden flow's segments: never garbage collected meanwhile.
    assert set(seen["objects"]) == set(objects)
    assert await store.write(lambda tx: tx.unreferenced_objects(objects)) == []
    record = await store.read(lambda tx: tx.get_deleted_flow(gone))
    assert record is not None and record.flow["id"] == gone and record.deleted_by == "alice"
    assert record.source is not None and record.source["id"] == model.flows[gone]["source_id"]
    assert record.view()["flow"]["timerange"] == "[0:0_3:0)"


async def test_restore_brings_back_flow_segments_tags_extent_and_figures(store: Store) -> None:
    model = Model()
    keep = await make_flow(store, model)
    gone = await make_flow(store, model, tags={"team": "news"})
    await register(store, model, gone, [(0, S), (S, 2 * S), (5 * S, 6 * S)], size=7)
    await register(store, model, keep, [(0, S)], size=3)
    before = await store.read(
        lambda tx: (tx.catalog_counts(), tx.flow_usage(FlowFilter(), None, 10))
    )
    await hide(store, model.flows[gone])

    counts = await store.read(lambda tx: tx.catalog_counts())
    assert counts.sources_by_format == {"urn:x-nmos:format:video": 1}
    [group] = counts.usage_by_codec
    assert group.usage == model.usage([keep])
    totals, flows = await usage_of(store, FlowFilter())
    assert totals == model.usage([keep]) and set(flows) == {keep}
    coverage = await store.read(lambda tx: tx.flow_coverage(FlowFilter(), None, 5, None, 10))
    assert [c.flow_id for c in coverage.flows] == [keep]

    record = await store.read(lambda tx: tx.get_deleted_flow(gone))
    assert record is not None

    def restore(tx: Any) -> None:
        assert record.source is not None
        tx.put_source(record.source)
        tx.restore_flow(record.flow)

    await store.write(restore)
    after = await store.read(
        lambda tx: (tx.catalog_counts(), tx.flow_usage(FlowFilter(), None, 10))
    )
    assert after == before
    page = await store.read(
        lambda tx: tx.list_segments(
            gone, timerange=None, object_id=None, reverse=False, page=None, limit=10
        )
    )
    assert [s.timerange for s in page.items] == ["[0:0_1:0)", "[1:0_2:0)", "[5:0_6:0)"]
    restored = await store.read(lambda tx: tx.get_flow(gone))
    assert restored is not None and restored["tags"] == {"team": "news"}
    assert "segments_updated" in restored
    assert await store.read(lambda tx: tx.flow_timerange(gone)) == TimeRange.parse("[0:0_6:0)")
    tagged = await store.read(
        lambda tx: tx.list_flows(FlowQuery(tags=TagFilter(values={"team": ["news"]}))).items
    )
    assert [f["id"] for f in tagged] == [gone]
    coverage = await store.read(
        lambda tx: tx.flow_coverage(FlowFilter(flow_id=gone), None, 5, None, 10)
    )
    assert coverage.flows[0].gap_count == 1
    assert await store.read(lambda tx: tx.get_deleted_flow(gone)) is None


async def test_listing_pages_newest_deletion_first_and_due_ones(store: Store) -> None:
    model = Model()
    ids = [await make_flow(store, model) for _ in range(5)]
    for at, flow_id in enumerate(ids):
        await hide(store, model.flows[flow_id], at=at)
    seen: list[str] = []
    key: str | None = None
    while True:
        records, key = await store.read(
            lambda tx, k=key: tx.list_deleted_flows(k, 2)  # type: ignore[misc]
        )
        seen += [r.flow_id for r in records]
        if key is None:
            break
    assert seen == list(reversed(ids))
    due = await store.read(lambda tx: tx.due_deleted_flows(62 * S, 10))
    assert [r.flow_id for r in due] == ids[:3]


async def test_purge_removes_segments_in_chunks_and_then_the_record(store: Store) -> None:
    model = Model()
    keep = await make_flow(store, model)
    gone = await make_flow(store, model)
    objects = await register(store, model, gone, [(i * S, (i + 1) * S) for i in range(5)])
    await register(store, model, keep, [(0, S)], reuse=objects[0])
    # A live flow's segments are never purged.
    assert await store.write(lambda tx: tx.purge_segments(keep, 10)) == []
    await hide(store, model.flows[gone])
    # Nor a hidden flow's before its purge started.
    assert await store.write(lambda tx: tx.purge_segments(gone, 10)) == []
    request_id = new_id()
    await store.write(lambda tx: tx.start_purge(gone, request_id))
    record = await store.read(lambda tx: tx.get_deleted_flow(gone))
    assert record is not None and record.purge_request_id == request_id
    assert await store.read(lambda tx: tx.due_deleted_flows(10**9 * S, 10)) == []
    purged: list[str] = []
    while True:
        chunk = await store.write(lambda tx: tx.purge_segments(gone, 2))
        purged += [s.object_id for s in chunk]
        if len(chunk) < 2:
            break
    assert sorted(purged) == sorted(objects)
    # The reused object is still used by the live flow; the rest may now be collected.
    assert await store.write(lambda tx: tx.unreferenced_objects(objects)) == sorted(objects[1:])
    await store.write(lambda tx: tx.forget_deleted_flow(gone))
    assert await store.read(lambda tx: tx.get_deleted_flow(gone)) is None
    totals, flows = await usage_of(store, FlowFilter())
    assert totals == model.usage([keep]) and set(flows) == {keep}
    allocated = await store.read(lambda tx: tx.storage_usage())
    assert {b.storage_id for b in allocated} >= {BACKEND}
