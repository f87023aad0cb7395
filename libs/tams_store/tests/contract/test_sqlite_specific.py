"""SQLite-only checks: migrations, segment-owned columns survive a flow replace, the writer's
settings, and where writes run (the event loop, or the writer thread when they must wait)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tams_schema.timerange import TimeRange
from tams_store import StoreUnavailable, TagFilter, cursor, open_store_from_env
from tams_store.port import ObjectRecord, SegmentRecord
from tams_store.sqlite import SqliteStore, catalog, database, media
from tams_store.sqlite.migrations import MIGRATIONS
from tams_store.sqlite.transactions import FORGET_OUTCOMES

from .docs import flow, source

SECOND = 1_000_000_000


async def test_migrations_are_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        store = SqliteStore(tmp_path / "tams.db")
        await store.open()
        await store.close()
    with sqlite3.connect(tmp_path / "tams.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_init_objects_stored_before_step_5_are_registered_not_collected(
    tmp_path: Path,
) -> None:
    """Before step 5 an init object was named only in its media object's document, and left
    unregistered: the collection of old allocations would delete it and its bytes."""
    path = tmp_path / "tams.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        for step in MIGRATIONS[:4]:
            for statement in step:
                conn.execute(statement)
        conn.execute("PRAGMA user_version=4")
        rows = [
            ("init-1", 0, None, "{}"),
            ("media-1", 1, "flow-a", '{"init_object_id": "init-1"}'),
            ("media-2", 1, "flow-b", '{"init_object_id": "init-1"}'),
            ("never-registered", 0, None, "{}"),
        ]
        for n, (object_id, registered, first_flow, doc) in enumerate(rows):
            conn.execute(
                "INSERT INTO objects (id, allocated_flow_id, storage_id, allocated_ns, "
                "registered, first_referenced_by_flow, doc) VALUES (?, 'flow-a', 'b', ?, ?, ?, ?)",
                (object_id, n, registered, first_flow, doc),
            )
    store = SqliteStore(path)
    await store.open()
    try:
        expired = await store.write(lambda tx: tx.expired_allocations(10**18, 10))
        assert [o.object_id for o in expired] == ["never-registered"]
        init = (await store.read(lambda tx: tx.get_objects(["init-1"])))["init-1"]
        assert init.registered and init.is_init and init.first_referenced_by_flow == "flow-a"
    finally:
        await store.close()


def _old_store(path: Path, steps: int) -> sqlite3.Connection:
    """A database as the first `steps` migration steps left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:steps]:
        for statement in step:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version={steps}")
    return conn


def _insert_object(
    conn: sqlite3.Connection, object_id: str, registered: int, storage_id: str | None, doc: str
) -> None:
    conn.execute(
        "INSERT INTO objects (id, allocated_flow_id, storage_id, allocated_ns, registered, "
        "first_referenced_by_flow, doc) VALUES (?, 'flow-a', ?, 1, ?, ?, ?)",
        (object_id, storage_id, registered, "flow-a" if registered else None, doc),
    )


async def test_objects_left_unused_before_step_6_are_released(tmp_path: Path) -> None:
    """Before step 6 a flow's deletion took its segments and left their objects registered,
    used by nothing and waiting for no collection: kept for ever, bytes and all. The upgrade
    gives each the release job a segment deletion queues since; objects in use stay."""
    path = tmp_path / "tams.db"
    with contextlib.closing(_old_store(path, 3)) as conn:
        conn.execute(
            "INSERT INTO flows (id, source_id, format, created_ns, metadata_updated_ns, doc) "
            "VALUES ('flow-a', 'source-a', 'urn:x-nmos:format:video', 1, 1, '{}')"
        )
        conn.execute(
            "INSERT INTO segments (flow_id, seg_start, seg_end, object_id, timerange, doc, "
            "created_ns) VALUES ('flow-a', 0, ?, 'used', '[0:0_1:0)', '{}', 1)",
            (SECOND,),
        )
        _insert_object(conn, "used", 1, "b", "{}")
        _insert_object(conn, "left", 1, "b", "{}")  # its flow was deleted
        _insert_object(conn, "left-external", 1, None, "{}")
        _insert_object(conn, "left-media", 1, "b", '{"init_object_id": "its-init"}')
        _insert_object(conn, "its-init", 0, "b", "{}")
        _insert_object(conn, "never-registered", 0, "b", "{}")
    store = SqliteStore(path)
    await store.open()
    try:
        jobs = await store.write(
            lambda tx: tx.claim_media_jobs("release", "test", time.time_ns(), SECOND, 100)
        )
        released = sorted(job.object_id for job in jobs)
        assert released == ["left", "left-external", "left-media"]
        # The collector forgets what is still unused when the job is due: all of them here,
        # then the init object once its media object is gone.
        unused = await store.read(lambda tx: tx.unreferenced_objects(released))
        assert unused == released
        expired = await store.write(lambda tx: tx.expired_allocations(10**18, 10))
        assert [o.object_id for o in expired] == ["never-registered"]
    finally:
        await store.close()


async def test_an_object_in_its_release_grace_keeps_its_job_through_step_15(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tams.db"
    due_ns = time.time_ns() + 3600 * SECOND
    with contextlib.closing(_old_store(path, 14)) as conn:
        _insert_object(conn, "waiting", 1, "b", "{}")
        conn.execute(
            "INSERT INTO media_jobs (kind, object_id, storage_id, created_ns, lease_until_ns) "
            "VALUES ('release', 'waiting', '', 1, ?)",
            (due_ns,),
        )
    store = SqliteStore(path)
    await store.open()
    try:
        jobs = await store.read(lambda tx: tx.media_jobs_of(["waiting"]))
        assert [(j.kind, j.lease_until_ns) for j in jobs] == [("release", due_ns)]
    finally:
        await store.close()


# One process opening the store at argv[1] as soon as argv[2] exists, after saying it is
# ready (argv[3]): a fresh interpreter, as each service is. Forked from the test process,
# it also inherited whatever locks the threads of earlier tests held at the fork, and hung.
OPEN_AND_CLOSE = """
import asyncio, pathlib, sys, time
from tams_store.sqlite import SqliteStore

path, go, ready = (pathlib.Path(a) for a in sys.argv[1:4])

async def open_and_close():
    store = SqliteStore(path)
    await store.open()
    await store.close()

ready.touch()
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.001)
asyncio.run(open_and_close())
"""


def test_processes_opening_a_new_database_at_once_all_open_it(tmp_path: Path) -> None:
    # The local stack's services share one database file and start together. Switching a
    # new file to WAL takes an exclusive lock, and SQLite refuses a contending switch with
    # "database is locked" at once instead of waiting out the busy timeout.
    processes = 5
    for attempt in range(15):
        path, go = tmp_path / f"tams-{attempt}.db", tmp_path / f"go-{attempt}"
        ready = [tmp_path / f"ready-{attempt}-{n}" for n in range(processes)]
        started = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_AND_CLOSE, str(path), str(go), str(mark)],
                stderr=subprocess.PIPE,
            )
            for mark in ready
        ]
        deadline = time.monotonic() + 60
        while not all(mark.exists() for mark in ready) and time.monotonic() < deadline:
            time.sleep(0.005)  # a deadline on a condition: each says it is ready
        go.touch()
        errors = [p.communicate(timeout=60)[1].decode() for p in started]
        assert [p.returncode for p in started] == [0] * processes, f"attempt {attempt}: {errors}"
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_put_flow_keeps_segment_owned_columns(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "tams.db")
    await store.open()
    doc = flow()
    await store.write(lambda tx: (tx.put_source(source(doc["source_id"])), tx.put_flow(doc)))
    with sqlite3.connect(tmp_path / "tams.db") as conn:
        conn.execute(
            "UPDATE flows SET seg_start = 1, seg_end = 2, segments_updated = 'x' WHERE id = ?",
            (doc["id"],),
        )
    await store.write(lambda tx: tx.put_flow({**doc, "label": "replaced"}))
    with sqlite3.connect(tmp_path / "tams.db") as conn:
        row = conn.execute(
            "SELECT seg_start, seg_end, segments_updated FROM flows WHERE id = ?", (doc["id"],)
        ).fetchone()
    assert row == (1, 2, "x")
    got = await store.read(lambda tx: tx.get_flow(doc["id"]))
    assert got is not None and got["segments_updated"] == "x" and got["label"] == "replaced"
    await store.close()


async def test_the_writer_cache_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAMS_STORE", "sqlite")
    monkeypatch.setenv("TAMS_SQLITE_PATH", str(tmp_path / "tams.db"))
    monkeypatch.setenv("TAMS_SQLITE_WRITER_CACHE_MB", "8")
    monkeypatch.setenv("TAMS_SQLITE_WRITES_ON_LOOP", "false")
    store = open_store_from_env()
    assert isinstance(store, SqliteStore)
    assert store.writes_on_loop is False
    await store.open()
    try:
        assert store._writer is not None
        cache = await store._writer.run(lambda c: c.execute("PRAGMA cache_size").fetchone()[0])
        assert cache == -8 * 1024  # KiB
    finally:
        await store.close()


async def test_old_outcomes_are_found_without_reading_them(tmp_path: Path) -> None:
    """The outcome pruner runs in a write transaction once a minute: it finds old outcomes
    through their index, never by reading rows whose outcome can be hundreds of KB."""
    store = SqliteStore(tmp_path / "tams.db")
    await store.open()
    await store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "tams.db")) as conn:
        plan = conn.execute(f"EXPLAIN QUERY PLAN {FORGET_OUTCOMES}", (0, 1)).fetchall()
    details = [row[3] for row in plan]
    assert any("command_outcomes_recorded" in d for d in details), details
    assert not any(d.startswith("SCAN command_outcomes") for d in details), details


def _thread_of_write(tx: object) -> int:
    return threading.get_ident()


async def test_a_write_that_can_start_at_once_runs_on_the_event_loop(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "tams.db")
    await store.open()
    try:
        doc = flow()

        def put(tx: Any) -> int:
            tx.put_source(source(doc["source_id"]))
            tx.put_flow(doc)
            return threading.get_ident()

        assert await store.write(put) == threading.get_ident()
        assert await store.read(lambda tx: tx.get_flow(doc["id"])) is not None
    finally:
        await store.close()


async def test_with_writes_on_loop_off_every_write_runs_on_the_writer_thread(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "tams.db", writes_on_loop=False)
    await store.open()
    try:
        assert await store.write(_thread_of_write) != threading.get_ident()
    finally:
        await store.close()


async def test_a_write_waiting_for_another_process_leaves_the_loop_free_and_keeps_order(
    tmp_path: Path,
) -> None:
    """Another connection holds the write lock: the write waits on the writer thread (not on
    the loop), a later write queues behind it, and both commit once the lock is free."""
    store = SqliteStore(tmp_path / "tams.db")
    await store.open()
    other = sqlite3.connect(tmp_path / "tams.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        ran: list[tuple[str, int]] = []
        first = asyncio.create_task(
            store.write(lambda tx: ran.append(("first", threading.get_ident())))
        )
        await asyncio.sleep(0)  # let it try the lock
        second = asyncio.create_task(
            store.write(lambda tx: ran.append(("second", threading.get_ident())))
        )
        await asyncio.sleep(0)
        # The loop runs on while both wait (a write stuck on the loop would have held it
        # here for the whole busy timeout, and then failed).
        assert not first.done() and not second.done() and ran == []
        other.execute("COMMIT")
        await asyncio.wait_for(asyncio.gather(first, second), timeout=10)
        assert [name for name, _ in ran] == ["first", "second"]
        assert all(thread != threading.get_ident() for _, thread in ran)
        # Once nothing waits, writes run on the loop again.
        assert await store.write(_thread_of_write) == threading.get_ident()
    finally:
        other.close()
        await store.close()


async def test_the_wal_starts_over_under_a_steady_stream_of_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With writes always queued, a passive checkpoint is always a little behind, and the
    # WAL starts over only when a write begins with all of it copied back: it only grew, by
    # gigabytes under load. With a limit of 256 frames (1 MiB), a restart and the cut of the
    # file back to the limit show as the WAL file getting smaller.
    monkeypatch.setattr(database, "WAL_RESTART_FRAMES", 256)
    monkeypatch.setattr(database, "WAL_SIZE_LIMIT_BYTES", 256 * 4096)
    store = SqliteStore(tmp_path / "tams.db", writes_on_loop=False)
    await store.open()
    wal = tmp_path / "tams.db-wal"
    sizes: list[int] = []
    started = time.monotonic()

    def started_over() -> bool:
        return any(b < a for a, b in itertools.pairwise(sizes))

    async def writer() -> None:
        # Until it starts over, within a few checkpoint rounds (one a second). Without the
        # RESTART it could take ten seconds or more to find a moment to start over.
        while not started_over():
            assert time.monotonic() - started < 5, f"the WAL only grew, to {sizes[-1]} bytes"
            doc = flow(description="x" * 4000)

            def put(tx: Any, doc: dict[str, Any] = doc) -> None:
                tx.put_source(source(doc["source_id"]))
                tx.put_flow(doc)

            await store.write(put)
            sizes.append(wal.stat().st_size)

    try:
        await asyncio.gather(*(writer() for _ in range(8)))
    finally:
        await store.close()
    assert max(sizes) > 1024 * 1024


def second(i: int, object_id: str, length: int = 1) -> SegmentRecord:
    """A segment of `length` seconds from second `i`, using `object_id`."""
    return SegmentRecord(
        i * SECOND, (i + length) * SECOND, object_id, f"[{i}:0_{i + length}:0)", {}, 1
    )


async def stored_flows(path: Path, *segments: list[SegmentRecord]) -> list[str]:
    """A store at `path` holding one flow for each list of segments (their objects registered
    by the first flow using them); the flows' ids."""
    store = SqliteStore(path)
    await store.open()
    docs = [flow() for _ in segments]

    def fill(tx: Any) -> None:
        registered: set[str] = set()
        for doc, records in zip(docs, segments, strict=True):
            tx.put_source(source(doc["source_id"]))
            tx.put_flow(doc)
            new = sorted({r.object_id for r in records} - registered)
            registered.update(new)
            objects = [
                ObjectRecord(o, doc["id"], "s", "video/mp2t", True, doc["id"], {}) for o in new
            ]
            tx.add_segments(doc["id"], records, objects, "2026-11-26T00:00:00.000000Z")

    await store.write(fill)
    await store.close()
    return [doc["id"] for doc in docs]


class VmSteps:
    """A connection to a store file that counts the SQLite VM steps (in thousands) its
    queries take: a cost that does not change with the machine's speed."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path)
        self.conn.row_factory = sqlite3.Row
        self.thousands = 0
        self.conn.set_progress_handler(self._count, 1000)

    def _count(self) -> int:
        self.thousands += 1
        return 0

    def taken(self) -> int:
        """Steps since the last call."""
        taken, self.thousands = self.thousands, 0
        return taken

    def close(self) -> None:
        self.conn.close()


async def vm_steps_for_one_objects_segments(tmp_path: Path, segments: int) -> dict[str, int]:
    """Steps to list, and to select for deletion, the three segments of one object in a flow
    of `segments` segments."""
    shared = {1, segments // 2, segments - 2}
    records = [second(i, "shared" if i in shared else f"o{i}") for i in range(segments)]
    (flow_id,) = await stored_flows(tmp_path / f"steps-{segments}.db", records)
    steps = VmSteps(tmp_path / f"steps-{segments}.db")
    try:
        listed = media.list_segments(
            steps.conn, flow_id, bounds=None, object_id="shared", reverse=False, page=None, limit=10
        )
        assert len(listed.items) == 3
        taken = {"list": steps.taken()}
        within = media.segments_within(steps.conn, flow_id, (-(2**63), 2**63 - 1), "shared", 10)
        assert len(within) == 3
        taken["delete"] = steps.taken()
    finally:
        steps.close()
    return taken


async def test_one_objects_segments_cost_the_same_in_a_flow_of_any_length(
    tmp_path: Path,
) -> None:
    """`object_id` filters (segment listings, deletions, tagging) go through the object's
    index: left to itself SQLite walked the whole flow (200 ms at 1,000,000 segments)."""
    small = await vm_steps_for_one_objects_segments(tmp_path, 100)
    large = await vm_steps_for_one_objects_segments(tmp_path, 20_000)
    for what in ("list", "delete"):
        assert large[what] <= small[what] + 2, (what, small, large)


async def vm_steps_of_overlap_queries(tmp_path: Path, long_first: bool) -> int:
    """Steps of a segment page, an extent and an overlap check near the end of a flow of
    20,000 one-second segments, after a day-long first segment if `long_first`."""
    day = 86_400
    first = [second(-day, "long", length=day)] if long_first else []
    records = first + [second(i, f"o{i}") for i in range(20_000)]
    path = tmp_path / f"overlap-{long_first}.db"
    (flow_id,) = await stored_flows(path, records)
    bounds = (19_000 * SECOND, 19_100 * SECOND)
    steps = VmSteps(path)
    try:
        page = media.list_segments(
            steps.conn, flow_id, bounds=bounds, object_id=None, reverse=False, page=None, limit=100
        )
        assert len(page.items) == 100
        extent = catalog.flow_timerange(steps.conn, flow_id, TimeRange.from_half_open(*bounds))
        assert str(extent) == "[19000:0_19100:0)"
        assert media.overlapping(steps.conn, flow_id, *bounds) == [(bounds[0], bounds[0] + SECOND)]
        return steps.taken()
    finally:
        steps.close()


async def test_a_long_segment_does_not_widen_the_flows_overlap_queries(tmp_path: Path) -> None:
    """Segments of a flow never overlap, so only the last one starting before a range can
    reach into it: a day-long segment at the start of a flow used to make every overlap
    query (pages, extents, the overlap check of each registration) read a day of segments."""
    plain = await vm_steps_of_overlap_queries(tmp_path, long_first=False)
    with_long = await vm_steps_of_overlap_queries(tmp_path, long_first=True)
    assert with_long <= plain + 2, (plain, with_long)


async def test_a_page_deep_into_a_long_range_costs_what_the_first_does(tmp_path: Path) -> None:
    """Walking a 20,000-segment range a page at a time: each page starts at its cursor, in
    either direction, rather than scanning the range from its start (or end) again."""
    (flow_id,) = await stored_flows(
        tmp_path / "deep.db", [second(i, f"o{i}") for i in range(20_000)]
    )
    steps = VmSteps(tmp_path / "deep.db")

    def page_steps(reverse: bool, at: int | None) -> int:
        page = None if at is None else cursor.encode([at * SECOND])
        got = media.list_segments(
            steps.conn,
            flow_id,
            bounds=(0, 20_000 * SECOND),
            object_id=None,
            reverse=reverse,
            page=page,
            limit=100,
        )
        assert len(got.items) == 100
        return steps.taken()

    try:
        assert page_steps(False, 19_800) <= page_steps(False, None) + 2
        assert page_steps(True, 200) <= page_steps(True, None) + 2
    finally:
        steps.close()


async def test_the_flows_using_an_object_cost_one_step_per_flow(tmp_path: Path) -> None:
    """`GET /objects/{id}`'s flows: a slate reused by every segment of two flows costs what
    an object used once does (it cost one step per segment: 300-600 ms at 200,000)."""

    async def slate_steps(segments: int) -> int:
        path = tmp_path / f"slate-{segments}.db"
        slate = [second(i, "slate") for i in range(segments)]
        flows = await stored_flows(path, slate, slate)
        steps = VmSteps(path)
        try:
            ids, next_key = media.object_flows(steps.conn, "slate", TagFilter(), None, 10)
            assert ids == sorted(flows) and next_key is None
            return steps.taken()
        finally:
            steps.close()

    assert await slate_steps(20_000) <= await slate_steps(10) + 2


async def test_a_full_store_says_it_is_full_and_writes_again_once_there_is_room(
    tmp_path: Path,
) -> None:
    """A statement that finds the disk full makes SQLite roll the transaction back itself:
    the write must fail as `StoreUnavailable` saying the disk is full (not "cannot rollback -
    no transaction is active"), leave nothing of itself, and the next write must work once
    there is room. `max_page_count` stands in for a full disk: SQLite answers it with the
    same SQLITE_FULL."""
    store = SqliteStore(tmp_path / "tams.db")
    await store.open()
    try:

        def sql(statement: str) -> Any:
            return lambda tx: tx.conn.execute(statement).fetchall()

        await store.write(sql("CREATE TABLE filler (x)"))
        writer = store._writer_conn
        assert writer is not None
        pages = writer.execute("PRAGMA page_count").fetchone()[0]
        writer.execute(f"PRAGMA max_page_count={pages + 2}")

        def fill(tx: Any) -> None:
            for _ in range(50):
                tx.conn.execute("INSERT INTO filler VALUES (?)", ("x" * 4000,))

        with pytest.raises(StoreUnavailable, match="database or disk is full"):
            await store.write(fill)
        assert not writer.in_transaction

        writer.execute("PRAGMA max_page_count=1073741823")  # room again
        await store.write(sql("INSERT INTO filler VALUES ('after')"))
        rows = await store.read(sql("SELECT x FROM filler"))
        assert [row[0] for row in rows] == ["after"]
    finally:
        await store.close()
