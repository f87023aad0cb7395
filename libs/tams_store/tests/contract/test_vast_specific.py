"""VAST-adapter checks where the SDK double matters: migrations, retries, idempotent
retried writes, unordered results, request economy, and the double's own faithfulness."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from ibis import _
from vastdb import errors

from tams_schema.envelopes import Outcome
from tams_schema.tables import MIGRATIONS, AddColumns, Column, table_specs
from tams_schema.timerange import TimeRange
from tams_store import FlowQuery, StoreError, StoreUnavailable, TagFilter, open_store_from_env
from tams_store.analytics import FlowFilter, UsageFigures
from tams_store.port import ObjectAllocation
from tams_store.vast import VastSettings, VastStore, counters
from tams_store.vast.double import (
    FakeVastCluster,
    bad_request,
    conflict,
    http_error,
    lost_connection,
    signature_differences,
    slowdown,
)
from tams_store.vast.tables import Tables

from .conftest import double_store
from .docs import flow, new_id, source
from .test_media_contract import SECOND, add, all_pages, segment
from .test_segment_tags_contract import tagged_pages

SCHEMA = ("tams", "tams")


async def opened(cluster: FakeVastCluster, **options: Any) -> VastStore:
    store = double_store(cluster, **options)
    await store.open()
    return store


async def put_flow(store: VastStore, doc: dict[str, Any]) -> None:
    def work(tx: Any) -> None:
        tx.put_source(source(doc["source_id"]))
        tx.put_flow(doc)

    await store.write(work)


# --- the double itself --------------------------------------------------------------------------


def test_double_signatures_match_the_sdk() -> None:
    assert signature_differences() == []


async def test_double_rejects_what_the_sdk_rejects() -> None:
    cluster = FakeVastCluster()
    store = await opened(cluster)
    session = cluster.connect(endpoint="http://vast.invalid")
    metadata = store.catalog.metadata["segments"]
    with session.transaction() as tx:
        table = tx.table_from_metadata(metadata)
        for predicate in (
            (_.flow_id == "a") | (_.seg_start > 1),  # OR across columns
            _.seg_start.notin([1]),
            ~(_.seg_start == 1),
            _.seg_start < _.seg_end,  # column against column
        ):
            with pytest.raises(NotImplementedError):
                table.select(columns=["seg_start"], predicate=predicate)
        with pytest.raises(errors.MissingRowIdColumn):
            table.delete(table.select(columns=["seg_start"]).read_all())
    await store.close()


# --- configuration ------------------------------------------------------------------------------


def test_settings_name_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VAST_ENDPOINT", "VAST_ACCESS_KEY", "VAST_SECRET_KEY", "VAST_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TAMS_STORE", "vast")
    monkeypatch.setenv("VAST_ENDPOINT", "http://vast.example:80")
    with pytest.raises(ValueError, match="VAST_ACCESS_KEY, VAST_SECRET_KEY, VAST_BUCKET"):
        open_store_from_env()
    monkeypatch.setenv("VAST_ACCESS_KEY", "a")
    monkeypatch.setenv("VAST_SECRET_KEY", "s")
    monkeypatch.setenv("VAST_BUCKET", "b")
    monkeypatch.setenv("VAST_SCHEMA", "x/y")
    monkeypatch.setenv("VAST_DATA_ENDPOINTS", "http://10.0.0.1, http://10.0.0.2")
    store = open_store_from_env()  # makes no connection until open()
    assert isinstance(store, VastStore)
    assert store.settings.schema_name == "x/y"
    assert store.queries.data_endpoints == ("http://10.0.0.1", "http://10.0.0.2")


async def test_sessions_get_explicit_timeouts_and_data_endpoints() -> None:
    cluster = FakeVastCluster()
    store = await opened(cluster)
    options = cluster.sessions[0].options
    assert options["timeout"] == (5.0, 30.0)
    assert options["backoff_config"].max_tries == 4
    assert options["config"].data_endpoints == ["http://vast.invalid"]
    await store.close()


async def test_work_runs_on_the_pools_never_on_the_event_loop() -> None:
    store = await opened(FakeVastCluster())
    reader = await store.read(lambda tx: threading.current_thread().name)
    writer = await store.write(lambda tx: threading.current_thread().name)
    assert reader.startswith("vast-reader") and writer.startswith("vast-writer")
    await store.close()


# --- migrations ---------------------------------------------------------------------------------


def versions(cluster: FakeVastCluster) -> list[int]:
    return sorted(r["version"] for r in cluster.rows(*SCHEMA, "schema_version"))


async def test_first_open_creates_every_table_sorted_where_declared() -> None:
    cluster = FakeVastCluster()
    store = await opened(cluster)
    await store.close()
    assert versions(cluster) == list(range(1, len(MIGRATIONS) + 1))
    for name, spec in table_specs().items():
        data = cluster.state.tables[(*SCHEMA, name)]
        assert data.schema.names == spec.column_names
        assert data.sorting_key == spec.sorting_key
    segments = cluster.state.tables[(*SCHEMA, "segments")]
    assert segments.projections == {"segments_by_object": (["object_id"], ["flow_id"])}
    # Reopening changes nothing and creates nothing.
    ddl = cluster.requests["ddl"]
    store = await opened(cluster)
    await store.close()
    assert cluster.requests["ddl"] == ddl and versions(cluster) == list(
        range(1, len(MIGRATIONS) + 1)
    )


def store_old_rows(store: VastStore, table: str, rows: list[dict[str, Any]]) -> None:
    """Rows as an older version of the adapter stored them (its schema, none of its code)."""
    session = store._new_session()
    with session.transaction() as tx:
        Tables(tx, store.catalog)[table].insert(rows)


async def test_migrations_are_additive_keep_data_and_fill_counters() -> None:
    cluster = FakeVastCluster()
    old = await opened(cluster, steps=MIGRATIONS[:2])
    doc = flow()
    store_old_rows(old, "sources", [{"id": doc["source_id"], "format": doc["format"], "doc": "{}"}])
    stored_doc = {k: v for k, v in doc.items() if k != "tags"}
    flow_row = {"id": doc["id"], "source_id": doc["source_id"], "format": doc["format"]}
    # Segments [0,2) [2,3) [5,6) [6,9) [12,13): runs [0,3) [5,9) [12,13).
    extent = {"seg_start": 0, "seg_end": 13 * SECOND, "max_seg_dur": 3 * SECOND, "seg_count": 5}
    store_old_rows(
        old,
        "flows",
        [{**flow_row, **extent, "codec": doc["codec"], "doc": json.dumps(stored_doc)}],
    )
    bounds = [(0, 2), (2, 3), (5, 6), (6, 9), (12, 13)]
    store_old_rows(
        old,
        "segments",
        [
            {"flow_id": doc["id"], "seg_start": a * SECOND, "seg_end": b * SECOND}
            | {"object_id": new_id(), "timerange": "_", "doc": "{}"}
            for a, b in bounds
        ],
    )
    await old.close()
    assert (*SCHEMA, "objects") not in cluster.state.tables

    extra = (AddColumns("flows", (Column("extra_note", "string"),)),)
    new = await opened(cluster, steps=[*MIGRATIONS, extra])
    assert versions(cluster) == list(range(1, len(MIGRATIONS) + 2))
    got = await new.read(lambda tx: tx.get_flow(doc["id"]))
    assert got is not None and got["id"] == doc["id"]
    flows = cluster.state.tables[(*SCHEMA, "flows")]
    assert flows.schema.names[-1] == "extra_note"
    assert [r.get("extra_note") for r in flows.rows.values()] == [None]
    assert (*SCHEMA, "objects") in cluster.state.tables
    # The counters introduced later were filled from the rows already there.
    usage = await new.read(lambda tx: tx.flow_usage(FlowFilter(), None, 10))
    assert usage.totals == UsageFigures(1, 5, 8 * SECOND, 0, 5)
    coverage = await new.read(lambda tx: tx.flow_coverage(FlowFilter(), None, 10, None, 10))
    assert coverage.flows[0].gaps == [(3 * SECOND, 5 * SECOND), (9 * SECOND, 12 * SECOND)]
    counts = await new.read(lambda tx: tx.catalog_counts())
    assert counts.sources_by_format == {doc["format"]: 1}
    window = await new.read(
        lambda tx: tx.flow_coverage(FlowFilter(), (SECOND, 6 * SECOND), 0, None, 10)
    )
    assert window.flows[0].segments == 3
    await new.close()
    # An older service still opens the newer schema (it ignores the extra column).
    again = await opened(cluster)
    assert (await again.read(lambda tx: tx.get_flow(doc["id"]))) is not None
    await again.close()


async def test_clusters_without_sorted_tables_get_projections() -> None:
    cluster = FakeVastCluster(version=(5, 2, 0, 0))
    store = await opened(cluster)
    segments = cluster.state.tables[(*SCHEMA, "segments")]
    assert segments.sorting_key == ()
    assert segments.projections["segments_sorted"][0] == ["flow_id", "seg_start"]
    doc = flow()
    await put_flow(store, doc)
    await add(store, doc["id"], [segment(i * SECOND, (i + 1) * SECOND) for i in range(30)])
    assert await all_pages(store, doc["id"], limit=4) == [i * SECOND for i in range(30)]
    await store.close()


async def test_start_up_waits_for_a_cluster_that_is_not_reachable_yet() -> None:
    cluster = FakeVastCluster()
    cluster.inject("begin", slowdown(), times=8)  # more than one store.write retries
    store = await opened(cluster)
    assert versions(cluster) == list(range(1, len(MIGRATIONS) + 1))
    await store.close()
    cluster.inject("begin", slowdown(), times=1000)
    impatient = double_store(cluster)
    impatient.settings.open_timeout_s = 0
    with pytest.raises(StoreUnavailable):
        await impatient.open()


async def test_a_missing_bucket_is_a_clear_error() -> None:
    cluster = FakeVastCluster(buckets=("other",))
    store = double_store(cluster)
    with pytest.raises(StoreError, match="bucket 'tams' does not exist"):
        await store.open()


async def test_nested_schema_paths_are_created() -> None:
    cluster = FakeVastCluster()
    store = VastStore(
        VastSettings(
            endpoint="http://vast.invalid",
            access_key="a",
            secret_key="s",
            bucket="tams",
            schema_name="runs/one",
        ),
        connect=cluster.connect,
    )
    await store.open()
    await store.close()
    assert {("tams", "runs"), ("tams", "runs/one")} <= cluster.state.schemas
    assert ("tams", "runs/one", "segments") in cluster.state.tables


# --- retries and idempotency -------------------------------------------------------------------


async def test_conflict_at_commit_is_retried_in_a_new_transaction() -> None:
    cluster = FakeVastCluster()
    store = await opened(cluster)
    doc = flow()
    cluster.inject("commit", conflict("concurrent change"), times=2)
    calls = 0

    def work(tx: Any) -> None:
        nonlocal calls
        calls += 1
        tx.put_source(source(doc["source_id"]))
        tx.put_flow(doc)

    await store.write(work)
    assert calls == 3
    assert len(cluster.rows(*SCHEMA, "flows")) == 1
    await store.close()


@pytest.mark.parametrize("fault", [slowdown, lost_connection])
async def test_transient_failures_mid_transaction_are_retried(fault: Any) -> None:
    cluster = FakeVastCluster()
    store = await opened(cluster)
    cluster.inject("insert", fault())
    await store.write(
        lambda tx: tx.allocate_objects([ObjectAllocation(new_id(), "f", "s", "video/mp2t", 1)])
    )
    assert len(cluster.rows(*SCHEMA, "objects")) == 1
    await store.close()


async def test_a_commit_that_landed_but_seemed_to_fail_is_not_applied_twice() -> None:
    cluster = FakeVastCluster()
    store = await opened(cluster)
    doc = flow()
    allocation = ObjectAllocation(new_id(), doc["id"], "s", "video/mp2t", 1)
    command_id = new_id()

    def command(tx: Any) -> Outcome:
        # What the command applier does: answer a recorded outcome, else apply and record.
        prior: Outcome | None = tx.recorded_outcome(command_id)
        if prior is not None:
            return prior
        tx.put_source(source(doc["source_id"]))
        tx.put_flow(doc)
        tx.allocate_objects([allocation])
        outcome = Outcome(status=201, body={"n": 1})
        tx.record_outcome(command_id, outcome)
        return outcome

    cluster.inject("commit", lost_connection(), after=True)
    assert (await store.write(command)).status == 201
    assert len(cluster.rows(*SCHEMA, "flows")) == 1
    assert len(cluster.rows(*SCHEMA, "objects")) == 1
    assert len(cluster.rows(*SCHEMA, "command_outcomes")) == 1
    # The adapter's writes are idempotent even without the outcome check.
    cluster.inject("commit", lost_connection(), after=True)
    await store.write(lambda tx: (tx.put_flow(doc), tx.allocate_objects([allocation])))
    assert len(cluster.rows(*SCHEMA, "flows")) == 1
    assert len(cluster.rows(*SCHEMA, "objects")) == 1
    await store.close()


async def test_persistent_trouble_becomes_store_unavailable() -> None:
    cluster = FakeVastCluster()
    store = await opened(cluster)
    cluster.inject("begin", slowdown(), times=100)
    with pytest.raises(StoreUnavailable):
        await store.read(lambda tx: tx.get_flow(new_id()))
    await store.close()


async def test_permanent_errors_and_domain_errors_are_not_retried() -> None:
    cluster = FakeVastCluster()
    store = await opened(cluster)
    forbidden = http_error(errors.Forbidden, 403, "AccessDenied", "no tabular policy")
    cluster.inject("select", forbidden)
    with pytest.raises(StoreError, match="Forbidden"):
        await store.read(lambda tx: tx.get_flow(new_id()))
    cluster.inject("select", bad_request("nope"))
    with pytest.raises(StoreError):
        await store.read(lambda tx: tx.get_flow(new_id()))
    calls = 0

    def work(tx: Any) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("a domain rule")

    begins = cluster.requests["begin"]
    with pytest.raises(RuntimeError):
        await store.write(work)
    assert calls == 1 and cluster.requests["begin"] == begins + 1
    await store.close()


async def test_duplicate_rows_from_racing_inserts_are_read_once_and_healed() -> None:
    cluster = FakeVastCluster()
    store = await opened(cluster)
    doc = flow()
    await put_flow(store, doc)
    # A second process inserted the same flow concurrently (no unique keys on VAST).
    session = cluster.connect(endpoint="http://vast.invalid")
    with session.transaction() as tx:
        table = tx.table_from_metadata(store.catalog.metadata["flows"])
        table.insert(table.select(columns=table.arrow_schema.names).read_all())
    assert len(cluster.rows(*SCHEMA, "flows")) == 2
    page = await store.read(lambda tx: tx.list_flows(FlowQuery()))
    assert [f["id"] for f in page.items] == [doc["id"]]
    await store.write(lambda tx: tx.put_flow({**doc, "label": "healed"}))
    assert [r["label"] for r in cluster.rows(*SCHEMA, "flows")] == ["healed"]
    await store.close()


# --- unordered results and request economy -------------------------------------------------------


async def test_segment_pages_cost_the_same_anywhere_in_a_long_flow() -> None:
    cluster = FakeVastCluster(seed=7)
    store = await opened(cluster)
    doc = flow()
    await put_flow(store, doc)
    total, limit = 3000, 50
    segments = [segment(i * 2 * SECOND, (i + 1) * 2 * SECOND) for i in range(total)]
    for offset in range(0, total, 500):
        await add(store, doc["id"], segments[offset : offset + 500])
    for position in (0, total // 2, total - limit - 1):
        query = TimeRange.parse(f"[{position * 2}:0_")
        before = dict(cluster.requests)
        page = await store.read(
            lambda tx, q=query: tx.list_segments(
                doc["id"], timerange=q, object_id=None, reverse=False, page=None, limit=limit
            )
        )
        assert [s.start for s in page.items] == [s.start for s in segments[position:][:limit]]
        selects = cluster.requests["select"] - before["select"]
        rows = cluster.requests["rows_returned"] - before["rows_returned"]
        # A flow lookup, a collection-free segment window or two: never a scan of the flow.
        assert selects <= 3, selects
        assert rows <= 2 * (limit + 1) + 10, rows
    assert cluster.requests["stats"] == 0  # explicit endpoints and splits: no stats requests
    await store.close()


def bursty_bounds() -> list[tuple[int, int]]:
    """5 s segments next to 1 ns ones, then a burst of 300 1 us segments, then a long gap:
    windows sized from the mean spacing must narrow (too many rows) and widen (too few)."""
    lengths = [1 if i % 3 else 5 * SECOND for i in range(90)] + [1000] * 300
    bounds, at = [], 0
    for length in lengths:
        bounds.append((at, at + length))
        at += length
    at += 3600 * SECOND
    bounds += [(at + i * 2 * SECOND, at + (i + 1) * 2 * SECOND) for i in range(60)]
    return bounds


async def test_random_order_and_arbitrary_limit_rows_still_give_exact_pages() -> None:
    bounds = bursty_bounds()
    starts = [s for s, _ in bounds]
    for seed in range(2):
        cluster = FakeVastCluster(seed=seed)
        store = await opened(cluster)
        doc = flow()
        await put_flow(store, doc)
        await add(store, doc["id"], [segment(s, e) for s, e in bounds[:3]])
        await add(store, doc["id"], [segment(s, e) for s, e in bounds[3:]])
        assert await all_pages(store, doc["id"], limit=9) == starts
        assert await all_pages(store, doc["id"], limit=25, reverse=True) == starts[::-1]
        query = TimeRange.from_half_open(starts[100], starts[-5])
        expected = [s for s, e in bounds if s < starts[-5] and e > starts[100]]
        assert await all_pages(store, doc["id"], timerange=query, limit=40) == expected
        await store.close()


# --- segment tags (docs/ext-segment-tags.md) ----------------------------------------------------


async def test_a_tag_filtered_page_reads_a_bounded_number_of_rows() -> None:
    cluster = FakeVastCluster(seed=3)
    store = await opened(cluster)
    doc = flow()
    await put_flow(store, doc)
    total = 3000
    segments = [segment(i * 2 * SECOND, (i + 1) * 2 * SECOND) for i in range(total)]
    for offset in range(0, total, 500):
        await add(store, doc["id"], segments[offset : offset + 500])
    rare = [segments[10].start, segments[total - 1].start]
    await store.write(
        lambda tx: tx.replace_segment_tags(doc["id"], {s: {"k": "v"} for s in rare}, "t")
    )
    wanted = TagFilter(values={"k": ["v"]})
    before = dict(cluster.requests)
    page = await store.read(
        lambda tx: tx.list_segments(
            doc["id"],
            timerange=None,
            object_id=None,
            reverse=False,
            page=None,
            limit=10,
            tags=wanted,
            scan_limit=1000,
        )
    )
    # One match among the first 1000 segments: a short page that goes on after them.
    assert [s.start for s in page.items] == rare[:1]
    assert page.next_key is not None
    rows = cluster.requests["rows_returned"] - before["rows_returned"]
    assert rows <= 2 * 1000 + 20, rows
    assert await tagged_pages(store, doc["id"], wanted, scan_limit=1000) == rare
    await store.close()


async def test_tag_filtered_pages_are_exact_with_unordered_results() -> None:
    bounds = bursty_bounds()
    every_third = {s: {"n": str(i % 2)} for i, (s, _e) in enumerate(bounds) if i % 3 == 0}
    for seed in range(2):
        cluster = FakeVastCluster(seed=seed)
        store = await opened(cluster)
        doc = flow()
        await put_flow(store, doc)
        await add(store, doc["id"], [segment(s, e) for s, e in bounds])
        await store.write(lambda tx, d=doc: tx.replace_segment_tags(d["id"], every_third, "t"))
        wanted = TagFilter(values={"n": ["1"]})
        expected = [s for s, tags in every_third.items() if tags["n"] == "1"]
        for scan_limit in (7, 100, 5000):
            got = await tagged_pages(store, doc["id"], wanted, limit=4, scan_limit=scan_limit)
            assert got == expected
            back = await tagged_pages(
                store, doc["id"], wanted, limit=9, scan_limit=scan_limit, reverse=True
            )
            assert back == expected[::-1]
        await store.close()


async def test_segments_stored_before_tags_existed_read_without_tags() -> None:
    cluster = FakeVastCluster()
    old = await opened(cluster, steps=MIGRATIONS[:6])  # step 7 added segment tags
    doc = flow()
    await put_flow(old, doc)
    await add(old, doc["id"], [segment(0, SECOND)])
    await old.close()
    new = await opened(cluster)
    page = await new.read(
        lambda tx: tx.list_segments(
            doc["id"], timerange=None, object_id=None, reverse=False, page=None, limit=5
        )
    )
    assert [s.tags for s in page.items] == [{}]
    await new.write(lambda tx: tx.replace_segment_tags(doc["id"], {0: {"a": ["b"]}}, "t"))
    assert await tagged_pages(new, doc["id"], TagFilter(exists={"a": True})) == [0]
    await new.close()


async def test_copies_made_before_step_14_count_where_they_are() -> None:
    """Before step 14 an object counted only where it was allocated, whatever its instances;
    the step moves objects with controlled copies to the backends that hold them."""
    cluster = FakeVastCluster()
    old = await opened(cluster, steps=MIGRATIONS[:13])
    copied = {
        "id": new_id(),
        "storage_id": "a",
        "registered": True,
        "size": 700,
        "allocated_ns": 1,
        "doc": json.dumps({"controlled_storage_ids": ["a", "b"]}),
    }
    plain = {**copied, "id": new_id(), "doc": "{}"}
    session = old._new_session()
    with session.transaction() as tx:
        tables = Tables(tx, old.catalog)
        tables["objects"].insert([copied, plain])
        # What the adapter counted then: both objects where they were allocated.
        counters.objects_changed(tables, [], [{**copied, "doc": None}, plain])
        counters.flush(tables)
    await old.close()
    new = await opened(cluster)
    usage = await new.read(lambda tx: tx.storage_usage())
    assert {(b.storage_id, b.objects, b.bytes) for b in usage} == {("a", 2, 1400), ("b", 1, 700)}
    await new.close()


async def test_init_objects_stored_before_step_5_are_registered_not_collected() -> None:
    """Before step 5 an init object was named only in its media objects' documents and left
    unregistered (as on SQLite before its step 5): the collection of old allocations would
    delete it and its bytes, and its flows would not know it."""
    cluster = FakeVastCluster()
    old = await opened(cluster, steps=MIGRATIONS[:3])
    docs = [flow(), flow()]
    store_old_rows(
        old,
        "flows",
        [
            {
                "id": d["id"],
                "source_id": d["source_id"],
                "format": d["format"],
                "doc": json.dumps(d),
            }
            | {"seg_start": 0, "seg_end": SECOND, "max_seg_dur": SECOND, "seg_count": 1}
            for d in docs
        ],
    )
    store_old_rows(
        old,
        "objects",
        [
            {"id": object_id, "allocated_flow_id": docs[0]["id"], "storage_id": "b"}
            | {"allocated_ns": n, "registered": registered, "first_referenced_by_flow": first}
            | {"doc": text}
            for n, (object_id, registered, first, text) in enumerate(
                [
                    ("init-1", False, None, "{}"),
                    ("media-1", True, docs[0]["id"], '{"init_object_id": "init-1"}'),
                    ("media-2", True, docs[1]["id"], '{"init_object_id": "init-1"}'),
                    ("never-registered", False, None, "{}"),
                ]
            )
        ],
    )
    store_old_rows(
        old,
        "segments",
        [
            {"flow_id": doc["id"], "seg_start": 0, "seg_end": SECOND, "object_id": media}
            | {"timerange": "[0:0_1:0)", "doc": "{}", "created_ns": 1}
            for doc, media in zip(docs, ["media-1", "media-2"], strict=True)
        ],
    )
    await old.close()
    new = await opened(cluster)
    expired = await new.write(lambda tx: tx.expired_allocations(10**18, 10))
    assert [o.object_id for o in expired] == ["never-registered"]
    init = (await new.read(lambda tx: tx.get_objects(["init-1"])))["init-1"]
    assert init.registered and init.is_init and init.first_referenced_by_flow == docs[0]["id"]
    assert await new.read(lambda tx: tx.unreferenced_objects(["init-1"])) == []
    flows, _next = await new.read(lambda tx: tx.object_flows("init-1", TagFilter(), None, 10))
    assert flows == sorted(d["id"] for d in docs)
    usage = {u.storage_id: u for u in await new.read(lambda tx: tx.storage_usage())}
    assert (usage["b"].objects, usage["b"].allocated_unregistered) == (3, 1)
    await new.close()


async def test_objects_left_unused_before_step_5_are_released() -> None:
    """Before step 5 a flow's deletion took its segments and left their objects registered,
    used by nothing and waiting for no collection (as on SQLite before its step 6): kept
    for ever, bytes and all. The upgrade gives each the release job a segment deletion
    queues since; objects in use, or named as an init object, stay."""
    cluster = FakeVastCluster()
    old = await opened(cluster, steps=MIGRATIONS[:3])
    docs = [flow()]
    store_old_rows(
        old,
        "flows",
        [
            {"id": d["id"], "source_id": d["source_id"], "format": d["format"]}
            | {"doc": json.dumps(d), "seg_start": 0, "seg_end": SECOND}
            | {"max_seg_dur": SECOND, "seg_count": 1}
            for d in docs
        ],
    )
    store_old_rows(
        old,
        "objects",
        [
            {"id": object_id, "allocated_flow_id": docs[0]["id"], "storage_id": storage}
            | {"allocated_ns": n, "registered": registered, "first_referenced_by_flow": None}
            | {"doc": text}
            for n, (object_id, registered, storage, text) in enumerate(
                [
                    ("used", True, "b", "{}"),
                    ("left", True, "b", "{}"),
                    ("left-external", True, None, "{}"),
                    ("left-media", True, "b", '{"init_object_id": "its-init"}'),
                    ("its-init", False, "b", "{}"),
                    ("never-registered", False, "b", "{}"),
                ]
            )
        ],
    )
    store_old_rows(
        old,
        "segments",
        [
            {"flow_id": docs[0]["id"], "seg_start": 0, "seg_end": SECOND, "object_id": "used"}
            | {"timerange": "[0:0_1:0)", "doc": "{}", "created_ns": 1}
        ],
    )
    await old.close()
    new = await opened(cluster)
    jobs = await new.write(
        lambda tx: tx.claim_media_jobs("release", "test", time.time_ns(), SECOND, 100)
    )
    released = sorted(job.object_id for job in jobs)
    assert released == ["left", "left-external", "left-media"]
    assert await new.read(lambda tx: tx.unreferenced_objects(released)) == released
    expired = await new.write(lambda tx: tx.expired_allocations(10**18, 10))
    assert [o.object_id for o in expired] == ["never-registered"]
    await new.close()
    again = await opened(cluster)  # applied once: a second start queues no job again
    jobs = await again.read(lambda tx: tx.media_jobs_of(released))
    assert [(j.object_id, j.attempts) for j in jobs] == [(i, 1) for i in released]
    await again.close()
