"""SQLite-only: the analytics triggers agree with a recount from the base tables after any
mix of writes and deletes (including deletes by plain SQL, as any future code path may do),
and the migration fills the counters from data stored before it existed."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from tams_store.analytics import BUCKET_NS
from tams_store.port import DeletedFlowRecord, ObjectAllocation, ObjectRecord, SegmentRecord
from tams_store.sqlite import SqliteStore
from tams_store.sqlite.migrations import MIGRATIONS

from .docs import flow, new_id, source

S = 1_000_000_000

RECOUNT = {
    "flow_stats": """
        SELECT f.id, count(s.seg_start), coalesce(sum(s.seg_end - s.seg_start), 0),
               coalesce(sum(o.size), 0), count(s.seg_start) - count(o.size)
        FROM flows f LEFT JOIN segments s ON s.flow_id = f.id
        LEFT JOIN objects o ON o.id = s.object_id GROUP BY f.id ORDER BY f.id""",
    "usage_totals": """
        SELECT f.format, coalesce(f.codec, ''), count(DISTINCT f.id), count(s.seg_start),
               coalesce(sum(s.seg_end - s.seg_start), 0), coalesce(sum(o.size), 0),
               count(s.seg_start) - count(o.size)
        FROM flows f LEFT JOIN segments s ON s.flow_id = f.id
        LEFT JOIN objects o ON o.id = s.object_id
        GROUP BY f.format, coalesce(f.codec, '') ORDER BY 1, 2""",
    "storage_totals": """
        SELECT coalesce(storage_id, ''), sum(registered),
               coalesce(sum(CASE WHEN registered THEN size END), 0),
               sum(registered AND size IS NULL), sum(NOT registered)
        FROM objects GROUP BY 1 ORDER BY 1""",
    "source_totals": "SELECT format, count(*) FROM sources GROUP BY format ORDER BY 1",
}

COUNTERS = {
    "flow_stats": "SELECT flow_id, segments, duration_ns, bytes, unsized FROM flow_stats "
    "ORDER BY flow_id",
    "usage_totals": "SELECT format, codec, flows, segments, duration_ns, bytes, unsized "
    "FROM usage_totals WHERE flows > 0 ORDER BY 1, 2",
    "storage_totals": "SELECT storage_id, registered, bytes, unsized, allocated "
    "FROM storage_totals WHERE registered > 0 OR allocated > 0 ORDER BY 1",
    "source_totals": "SELECT format, sources FROM source_totals WHERE sources > 0 ORDER BY 1",
}


def brute_force_runs(conn: sqlite3.Connection) -> list[tuple[str, int, int]]:
    runs: list[tuple[str, int, int]] = []
    for flow_id, start, end in conn.execute(
        "SELECT flow_id, seg_start, seg_end FROM segments ORDER BY flow_id, seg_start"
    ):
        if runs and runs[-1][0] == flow_id and runs[-1][2] == start:
            runs[-1] = (flow_id, runs[-1][1], end)
        else:
            runs.append((flow_id, start, end))
    return runs


def assert_counters_match(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        for table, recount in RECOUNT.items():
            assert conn.execute(COUNTERS[table]).fetchall() == conn.execute(recount).fetchall(), (
                table
            )
        stored = conn.execute(
            "SELECT flow_id, run_start, run_end FROM flow_runs ORDER BY flow_id, run_start"
        ).fetchall()
        assert stored == brute_force_runs(conn)
        buckets: Counter[tuple[str, int]] = Counter(
            (flow_id, start // BUCKET_NS)
            for flow_id, start in conn.execute("SELECT flow_id, seg_start FROM segments")
        )
        kept = conn.execute(
            "SELECT flow_id, bucket, segments FROM flow_buckets WHERE segments > 0"
        ).fetchall()
        assert {(f, b): n for f, b, n in kept} == dict(buckets)


async def fill(store: SqliteStore, rng: random.Random, flows: int = 4) -> list[str]:
    flow_ids = []
    for n in range(flows):
        doc = flow(codec=rng.choice(["video/h264", "video/h265", None]))
        if doc["codec"] is None:
            del doc["codec"]
        slots = rng.sample(range(60), 45)

        def work(tx: Any, doc: dict[str, Any] = doc, slots: list[int] = slots, n: int = n) -> None:
            tx.put_source(source(doc["source_id"]))
            tx.put_flow(doc)
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
                    objects.append(
                        ObjectRecord(object_id, None, storage, None, True, doc["id"], {}, size)
                    )
                    # 700 s slots from before 0 on: several hours, both signs, touching.
                    start = (slot - 20) * 700 * S
                    end = start + 700 * S
                    records.append(SegmentRecord(start, end, object_id, "x", {}, 0))
                tx.allocate_objects(allocations)
                tx.add_segments(doc["id"], records, objects, "2026-01-01T00:00:00.000000Z")
            tx.allocate_objects([ObjectAllocation(new_id(), doc["id"], "backend-0", "x", 0)])

        await store.write(work)
        flow_ids.append(doc["id"])
    return flow_ids


async def test_triggers_agree_with_a_recount_after_writes_and_deletes(tmp_path: Path) -> None:
    rng = random.Random(11)
    store = SqliteStore(tmp_path / "tams.db")
    await store.open()
    flow_ids = await fill(store, rng)
    assert_counters_match(tmp_path / "tams.db")

    # Deletes by plain SQL, from the middle, the ends and across runs, split runs.
    with sqlite3.connect(tmp_path / "tams.db") as conn:
        for flow_id in flow_ids[:2]:
            starts = [
                r[0]
                for r in conn.execute(
                    "SELECT seg_start FROM segments WHERE flow_id = ?", (flow_id,)
                )
            ]
            for start in rng.sample(starts, 20):
                conn.execute(
                    "DELETE FROM segments WHERE flow_id = ? AND seg_start = ?", (flow_id, start)
                )
        conn.execute(
            "DELETE FROM segments WHERE flow_id = ? AND seg_start >= ? AND seg_start < ?",
            (flow_ids[2], -3000 * S, 9000 * S),
        )
        conn.execute("DELETE FROM objects WHERE registered = 0")
    assert_counters_match(tmp_path / "tams.db")

    await store.write(lambda tx: tx.delete_flow(flow_ids[3]))
    assert_counters_match(tmp_path / "tams.db")
    await store.close()


async def test_sizes_read_earlier_in_the_transaction_count_as_stored(tmp_path: Path) -> None:
    """A registration reads its objects, then inserts their segments: the counters take the
    sizes from that read, or from what the registration itself wrote, never a stale one."""
    store = SqliteStore(tmp_path / "tams.db")
    await store.open()
    doc = flow()
    sized, unsized, fresh, kept = new_id(), new_id(), new_id(), new_id()

    def setup(tx: Any) -> None:
        tx.put_source(source(doc["source_id"]))
        tx.put_flow(doc)
        tx.allocate_objects(
            [ObjectAllocation(i, doc["id"], "backend-0", "video/mp2t", 0) for i in (fresh, kept)]
        )
        registered = [
            ObjectRecord(sized, None, "backend-0", None, True, doc["id"], {}, 700),
            ObjectRecord(unsized, None, None, None, True, doc["id"], {}, None),
            ObjectRecord(kept, doc["id"], "backend-0", None, True, doc["id"], {}, 300),
        ]
        segments = [
            SegmentRecord(n * S, (n + 1) * S, o.object_id, "x", {}, 0)
            for n, o in enumerate(registered)
        ]
        tx.add_segments(doc["id"], segments, registered, "2026-01-01T00:00:00.000000Z")

    await store.write(setup)

    def register(tx: Any) -> None:
        known = tx.get_objects([sized, unsized, fresh, kept])
        assert known[fresh].size is None
        segments = [
            SegmentRecord((10 + n) * S, (11 + n) * S, i, "x", {}, 0)
            for n, i in enumerate((sized, unsized, fresh, kept))
        ]
        # `fresh` gets its size at this first registration; `kept` is written again without
        # one, and keeps the size it has.
        objects = [
            ObjectRecord(fresh, doc["id"], "backend-0", None, True, doc["id"], {}, 2500),
            ObjectRecord(kept, doc["id"], "backend-0", None, True, doc["id"], {}, None),
        ]
        tx.add_segments(doc["id"], segments, objects, "2026-01-01T00:00:01.000000Z")

    await store.write(register)
    assert_counters_match(tmp_path / "tams.db")
    with sqlite3.connect(tmp_path / "tams.db") as conn:
        stats = conn.execute(
            "SELECT segments, bytes, unsized FROM flow_stats WHERE flow_id = ?", (doc["id"],)
        ).fetchone()
    assert stats == (7, 700 + 300 + 700 + 2500 + 300, 2)
    await store.close()


async def test_migration_fills_counters_from_existing_rows(tmp_path: Path) -> None:
    path = tmp_path / "tams.db"
    previous = MIGRATIONS.index(next(m for m in MIGRATIONS if any("flow_stats" in s for s in m)))
    with sqlite3.connect(path, isolation_level=None) as conn:
        for step in MIGRATIONS[:previous]:
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={previous}")
        doc = flow()
        conn.execute(
            "INSERT INTO sources (id, format, created_ns, updated_ns, doc) "
            "VALUES (?, ?, 0, 0, '{}')",
            (doc["source_id"], doc["format"]),
        )
        conn.execute(
            "INSERT INTO flows (id, source_id, format, codec, created_ns, metadata_updated_ns, "
            "doc) VALUES (?, ?, ?, ?, 0, 0, '{}')",
            (doc["id"], doc["source_id"], doc["format"], doc["codec"]),
        )
        for start, end in [(0, 2), (2, 3), (5, 6), (6, 9), (12, 13)]:
            object_id = new_id()
            conn.execute(
                "INSERT INTO objects (id, storage_id, allocated_ns, registered) "
                "VALUES (?, 'b', 0, 1)",
                (object_id,),
            )
            conn.execute(
                "INSERT INTO segments (flow_id, seg_start, seg_end, object_id, timerange, doc, "
                "created_ns) VALUES (?, ?, ?, ?, 'x', '{}', 0)",
                (doc["id"], start * S, end * S, object_id),
            )
    store = SqliteStore(path)
    await store.open()
    await store.close()
    assert_counters_match(path)
    with sqlite3.connect(path) as conn:
        runs = conn.execute("SELECT run_start, run_end FROM flow_runs ORDER BY 1").fetchall()
    assert runs == [(0, 3 * S), (5 * S, 9 * S), (12 * S, 13 * S)]


async def test_triggers_follow_soft_delete_restore_and_purge(tmp_path: Path) -> None:
    """docs/ext-soft-delete.md: a hidden flow (and its source) leave the totals, keep their
    own figures for a restore that brings them back exactly, and a purge leaves nothing."""
    rng = random.Random(12)
    path = tmp_path / "tams.db"
    store = SqliteStore(path)
    await store.open()
    flow_ids = await fill(store, rng)

    def snapshot() -> dict[str, list[Any]]:
        with sqlite3.connect(path) as conn:
            return {t: conn.execute(q).fetchall() for t, q in COUNTERS.items()}

    before = snapshot()

    def hide(tx: Any, flow_id: str) -> None:
        doc = tx.get_flow(flow_id)
        tx.hide_flow(
            DeletedFlowRecord(
                flow=doc,
                deleted="2026-01-02T00:00:00.000000Z",
                deleted_ns=1,
                purge_after="2026-01-03T00:00:00.000000Z",
                purge_after_ns=2,
                source=tx.get_source(doc["source_id"]),
            )
        )
        tx.delete_source(doc["source_id"])

    await store.write(lambda tx: hide(tx, flow_ids[0]))
    with sqlite3.connect(path) as conn:
        # The totals count live flows only; the hidden flow's own row stays for a restore.
        for table in ("usage_totals", "source_totals", "storage_totals"):
            assert (
                conn.execute(COUNTERS[table]).fetchall() == conn.execute(RECOUNT[table]).fetchall()
            )
        kept = conn.execute(
            "SELECT segments FROM flow_stats WHERE flow_id = ?", (flow_ids[0],)
        ).fetchone()
        assert kept == (45,)

    def restore(tx: Any) -> None:
        record = tx.get_deleted_flow(flow_ids[0])
        tx.put_source(record.source)
        tx.restore_flow(record.flow)

    await store.write(restore)
    assert snapshot() == before
    assert_counters_match(path)

    await store.write(lambda tx: hide(tx, flow_ids[1]))
    await store.write(lambda tx: tx.start_purge(flow_ids[1], new_id()))
    while await store.write(lambda tx: tx.purge_segments(flow_ids[1], 10)):
        pass
    await store.write(lambda tx: tx.forget_deleted_flow(flow_ids[1]))
    assert_counters_match(path)
    await store.close()
