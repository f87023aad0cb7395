"""Segments and objects in SQLite.

Segments are clustered on (flow_id, seg_start) (a WITHOUT ROWID table), with half-open integer
bounds [seg_start, seg_end). Overlap queries scan an index range bounded on both sides
(`overlap`), so a page costs the same at the start, middle or end of a flow of any length
(VASTDB-NOTES §4.2: 0.12 ms vs 50 ms).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from tams_store import cursor, documents, segment_tags
from tams_store.port import ObjectRecord, SegmentPage, SegmentRecord, TagFilter
from tams_store.sqlite import counters
from tams_store.sqlite.catalog import tag_clauses
from tams_store.sqlite.overlap import overlap_clause


def max_seg_dur(conn: sqlite3.Connection, flow_id: str) -> int | None:
    row = conn.execute("SELECT max_seg_dur FROM flows WHERE id = ?", (flow_id,)).fetchone()
    return None if row is None else int(row[0])


def overlapping(
    conn: sqlite3.Connection, flow_id: str, start: int, end: int, limit: int = 1
) -> list[tuple[int, int]]:
    clause, args = overlap_clause(flow_id, start, end)
    rows = conn.execute(
        f"SELECT seg_start, seg_end FROM segments WHERE flow_id = ? AND {clause} "
        "ORDER BY seg_start LIMIT ?",
        [flow_id, *args, limit],
    )
    return [(r[0], r[1]) for r in rows]


def insert_segments(
    conn: sqlite3.Connection,
    flow_id: str,
    rows: list[SegmentRecord],
    known_sizes: Mapping[str, int | None] | None = None,
) -> None:
    """Insert a flow's new segments and count them; `known_sizes` are object sizes the
    caller has just read or written in this transaction (the rest are read)."""
    conn.executemany(
        "INSERT INTO segments (flow_id, seg_start, seg_end, object_id, timerange, doc, "
        "created_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                flow_id,
                r.start,
                r.end,
                r.object_id,
                r.timerange,
                documents.dumps(r.doc),
                r.created_ns,
            )
            for r in rows
        ],
    )
    # The one place segments are inserted keeps the analytics counters (once per batch).
    counters.segments_inserted(conn, flow_id, rows, known_sizes or {})


def update_flow_extent(
    conn: sqlite3.Connection,
    flow_id: str,
    start: int,
    end: int,
    longest: int,
    segments_updated: str,
) -> None:
    conn.execute(
        "UPDATE flows SET seg_start = min(coalesce(seg_start, ?), ?), "
        "seg_end = max(coalesce(seg_end, ?), ?), max_seg_dur = max(max_seg_dur, ?), "
        "segments_updated = ? WHERE id = ?",
        (start, start, end, end, longest, segments_updated, flow_id),
    )


def get_objects(conn: sqlite3.Connection, object_ids: list[str]) -> dict[str, ObjectRecord]:
    if not object_ids:
        return {}
    found: dict[str, ObjectRecord] = {}
    unique = sorted(set(object_ids))
    for offset in range(0, len(unique), 500):
        chunk = unique[offset : offset + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT id, allocated_flow_id, storage_id, content_type, registered, "
            f"first_referenced_by_flow, doc, size, allocated_ns FROM objects WHERE id IN ({marks})",
            chunk,
        )
        for row in rows:
            found[row["id"]] = ObjectRecord(
                object_id=row["id"],
                allocated_flow_id=row["allocated_flow_id"],
                storage_id=row["storage_id"],
                content_type=row["content_type"],
                registered=bool(row["registered"]),
                first_referenced_by_flow=row["first_referenced_by_flow"],
                doc=documents.loads(row["doc"]),
                size=row["size"],
                allocated_ns=row["allocated_ns"],
            )
    return found


def register_objects(conn: sqlite3.Connection, objects: list[ObjectRecord]) -> None:
    """Mark objects registered (first use) or record external ones, with their properties."""
    conn.executemany(
        "INSERT INTO objects (id, allocated_flow_id, storage_id, content_type, allocated_ns, "
        "registered, first_referenced_by_flow, doc, init_object_id, size) "
        "VALUES (?, ?, ?, ?, 0, 1, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET registered = 1, "
        "first_referenced_by_flow = excluded.first_referenced_by_flow, doc = excluded.doc, "
        "init_object_id = excluded.init_object_id, size = coalesce(excluded.size, size)",
        [
            (
                o.object_id,
                o.allocated_flow_id,
                o.storage_id,
                o.content_type,
                o.first_referenced_by_flow,
                json.dumps(o.doc),
                o.init_object_id,
                o.size,
            )
            for o in objects
        ],
    )


def update_objects(conn: sqlite3.Connection, objects: list[ObjectRecord]) -> None:
    conn.executemany(
        "UPDATE objects SET doc = ?, init_object_id = ? WHERE id = ?",
        [(json.dumps(o.doc), o.init_object_id, o.object_id) for o in objects],
    )


def unreferenced_objects(conn: sqlite3.Connection, object_ids: list[str]) -> list[str]:
    found: list[str] = []
    for chunk in _chunks(sorted(set(object_ids))):
        # `+o.registered`: look the ids up by primary key, never by the `registered` index
        # (which would scan every registered object).
        rows = conn.execute(
            f"SELECT o.id FROM objects o WHERE o.id IN ({_marks(chunk)}) AND +o.registered = 1 "
            "AND NOT EXISTS (SELECT 1 FROM segments s WHERE s.object_id = o.id) "
            "AND NOT EXISTS (SELECT 1 FROM objects m WHERE m.init_object_id = o.id)",
            chunk,
        )
        found += [r[0] for r in rows]
    return found


def expired_allocations(
    conn: sqlite3.Connection, allocated_before_ns: int, limit: int
) -> list[ObjectRecord]:
    rows = conn.execute(
        "SELECT id FROM objects WHERE registered = 0 AND allocated_ns < ? "
        "ORDER BY allocated_ns LIMIT ?",
        (allocated_before_ns, limit),
    ).fetchall()
    found = get_objects(conn, [r[0] for r in rows])
    return [found[r[0]] for r in rows]


def remove_objects(conn: sqlite3.Connection, object_ids: list[str]) -> None:
    conn.executemany("DELETE FROM objects WHERE id = ?", [(i,) for i in object_ids])


def _marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def _chunks(values: list[Any], size: int = 500) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


# --- segment deletion ------------------------------------------------------------------


def _segments_of(object_id: str | None) -> str:
    """The segments table, through the object index when one object's segments are wanted:
    that index holds (object_id, flow_id, seg_start), so it selects and orders them. Left to
    itself SQLite walks the whole flow by its primary key (a scale audit: 200 ms on a flow of
    1,000,000 segments, in the writer when deleting)."""
    return "segments INDEXED BY segments_object" if object_id is not None else "segments"


def segments_within(
    conn: sqlite3.Connection,
    flow_id: str,
    bounds: tuple[int, int],
    object_id: str | None,
    limit: int,
) -> list[SegmentRecord]:
    """Segments with [seg_start, seg_end) inside [q_start, q_end), in time order: an index
    range scan on (flow_id, seg_start) from q_start."""
    q_start, q_end = bounds
    where = "flow_id = ? AND seg_start >= ? AND seg_start < ? AND seg_end <= ?"
    params: list[Any] = [flow_id, q_start, q_end, q_end]
    if object_id is not None:
        where += " AND object_id = ?"
        params.append(object_id)
    rows = conn.execute(
        "SELECT seg_start, seg_end, object_id, timerange, doc, created_ns, tags FROM "
        f"{_segments_of(object_id)} WHERE {where} ORDER BY seg_start LIMIT ?",
        [*params, limit],
    )
    return [segment_record(r, r["created_ns"]) for r in rows]


def segment_record(row: sqlite3.Row, created_ns: int) -> SegmentRecord:
    return SegmentRecord(
        start=row["seg_start"],
        end=row["seg_end"],
        object_id=row["object_id"],
        timerange=row["timerange"],
        doc=documents.loads(row["doc"]),
        created_ns=created_ns,
        tags=segment_tags.decode(row["tags"]),
    )


def replace_segment_tags(
    conn: sqlite3.Connection, flow_id: str, tags: dict[int, dict[str, Any]], segments_updated: str
) -> None:
    conn.executemany(
        "UPDATE segments SET tags = ? WHERE flow_id = ? AND seg_start = ?",
        [(segment_tags.encode(value), flow_id, start) for start, value in tags.items()],
    )
    conn.execute("UPDATE flows SET segments_updated = ? WHERE id = ?", (segments_updated, flow_id))


def _segment_tag_clauses(wanted: TagFilter) -> tuple[list[str], list[Any]]:
    """The segment tag filter over the `tags` JSON object of `s` (segment_tags.matches)."""
    clauses: list[str] = []
    params: list[Any] = []
    for name, values in wanted.values.items():
        marks = _marks(values) or "NULL"
        clauses.append(
            "EXISTS (SELECT 1 FROM json_each(s.tags) t WHERE t.key = ? AND ("
            f"(t.type = 'text' AND t.value IN ({marks})) OR (t.type = 'array' AND EXISTS "
            f"(SELECT 1 FROM json_each(t.value) e WHERE e.type = 'text' "
            f"AND e.value IN ({marks})))))"
        )
        params += [name, *values, *values]
    for name, present in wanted.exists.items():
        clauses.append(
            f"{'' if present else 'NOT '}EXISTS (SELECT 1 FROM json_each(s.tags) t WHERE t.key = ?)"
        )
        params.append(name)
    return clauses, params


def delete_segments(
    conn: sqlite3.Connection, flow_id: str, starts: list[int], segments_updated: str
) -> None:
    conn.executemany(
        "DELETE FROM segments WHERE flow_id = ? AND seg_start = ?",
        [(flow_id, start) for start in starts],
    )
    first = conn.execute(
        "SELECT seg_start FROM segments WHERE flow_id = ? ORDER BY seg_start ASC LIMIT 1",
        (flow_id,),
    ).fetchone()
    last = conn.execute(
        "SELECT seg_end FROM segments WHERE flow_id = ? ORDER BY seg_start DESC LIMIT 1",
        (flow_id,),
    ).fetchone()
    if first is None or last is None:
        # Empty again: forget the longest-segment bound too.
        conn.execute(
            "UPDATE flows SET seg_start = NULL, seg_end = NULL, max_seg_dur = 0, "
            "segments_updated = ? WHERE id = ?",
            (segments_updated, flow_id),
        )
        return
    conn.execute(
        "UPDATE flows SET seg_start = ?, seg_end = ?, segments_updated = ? WHERE id = ?",
        (first[0], last[0], segments_updated, flow_id),
    )


def list_segments(
    conn: sqlite3.Connection,
    flow_id: str,
    *,
    bounds: tuple[int, int] | None,
    object_id: str | None,
    reverse: bool,
    page: str | None,
    limit: int,
    tags: TagFilter | None = None,
    scan_limit: int = 0,
) -> SegmentPage:
    """One page of a flow's segments in time order (keyset on seg_start); with a tag filter,
    the matches among at most `scan_limit` segments (port.ReadTx.list_segments)."""
    if max_seg_dur(conn, flow_id) is None:
        return SegmentPage(items=[], limit=limit)  # no such flow
    where = ["flow_id = ?"]
    params: list[Any] = [flow_id]
    after = None if page is None else cursor.decode(page, (int,))[0]
    if bounds is not None:
        # The cursor narrows the range itself, in one bound on each side: given two lower
        # (or upper) bounds SQLite scans from one of them, and a page deep into a long range
        # would scan from its start again.
        q_start, q_end = bounds
        if after is None:
            clause, args = overlap_clause(flow_id, q_start, q_end)
        elif reverse:
            clause, args = overlap_clause(flow_id, q_start, min(q_end, after))
        else:
            # Past the cursor every segment starts after the range's start, or is the one
            # segment reaching into it, which the first page began with.
            clause, args = (
                "seg_start > ? AND seg_start < ? AND seg_end > ?",
                [after, q_end, q_start],
            )
        where.append(clause)
        params += args
    elif after is not None:
        where.append("seg_start < ?" if reverse else "seg_start > ?")
        params.append(after)
    if object_id is not None:
        where.append("object_id = ?")
        params.append(object_id)
    order = "DESC" if reverse else "ASC"
    scan = (
        "SELECT seg_start, seg_end, object_id, timerange, doc, tags "
        f"FROM {_segments_of(object_id)} "
        f"WHERE {' AND '.join(where)} ORDER BY seg_start {order} LIMIT ?"
    )
    if not segment_tags.filters(tags):
        rows = conn.execute(scan, [*params, limit + 1]).fetchall()
    else:
        assert tags is not None
        # The matches among the next `scan_limit` segments: the inner scan bounds the work.
        # The inner query runs as a co-routine yielding rows in its (index) order, and the
        # outer one stops at its LIMIT; an outer ORDER BY would make SQLite sort the whole
        # scan in a temporary b-tree first (5x slower for a full page: bench/segment_tags.py).
        # The contract tests hold the page order on every SQLite they run with.
        clauses, args = _segment_tag_clauses(tags)
        rows = conn.execute(
            f"SELECT * FROM ({scan}) s WHERE {' AND '.join(clauses)} LIMIT ?",
            [*params, scan_limit, *args, limit + 1],
        ).fetchall()
    next_key = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_key = cursor.encode([rows[-1]["seg_start"]])
    elif segment_tags.filters(tags):
        # Fewer matches than wanted: if the scan stopped at its bound, continue after the
        # last segment it examined (a short page, but never an unbounded one).
        examined, last = conn.execute(
            f"SELECT count(*), {'min' if reverse else 'max'}(seg_start) FROM "
            f"(SELECT seg_start FROM segments WHERE {' AND '.join(where)} "
            f"ORDER BY seg_start {order} LIMIT ?)",
            [*params, scan_limit],
        ).fetchone()
        if examined >= scan_limit and last is not None:
            next_key = cursor.encode([last])
    items = [segment_record(r, 0) for r in rows]
    return SegmentPage(items=items, limit=limit, next_key=next_key)


def _flows_using(
    conn: sqlite3.Connection, object_id: str, flow_tags: TagFilter, after: str | None, count: int
) -> list[str]:
    """Up to `count` flows (id order, after `after`) with a segment of the media object, live
    and passing `flow_tags`: one seek in the object index per flow (a loose index scan),
    however many segments use the object. Distinct flows by a query over its segments cost
    one step per segment: 300-600 ms for an object 200,000 segments reuse."""
    clauses, args = tag_clauses(flow_tags, "f", "flow_id", "flow_tags")
    # Soft-deleted flows keep their segments but are no flow of any TAMS answer.
    keep = "NOT EXISTS (SELECT 1 FROM deleted_flows WHERE id = ?)"
    if clauses:
        keep += f" AND EXISTS (SELECT 1 FROM flows f WHERE f.id = ? AND {' AND '.join(clauses)})"
    found: list[str] = []
    flow_id = after or ""
    while len(found) < count:
        row = conn.execute(
            "SELECT min(flow_id) FROM segments INDEXED BY segments_object "
            "WHERE object_id = ? AND flow_id > ?",
            (object_id, flow_id),
        ).fetchone()
        if row[0] is None:
            break
        flow_id = row[0]
        wanted = [flow_id, flow_id, *args] if clauses else [flow_id]
        if conn.execute(f"SELECT {keep}", wanted).fetchone()[0]:
            found.append(flow_id)
    return found


def object_flows(
    conn: sqlite3.Connection,
    object_id: str,
    flow_tags: TagFilter,
    page: str | None,
    limit: int,
) -> tuple[list[str], str | None]:
    after = None if page is None else cursor.decode(page, (str,))[0]
    named_as_init = conn.execute(
        "SELECT 1 FROM objects WHERE init_object_id = ? LIMIT 1", (object_id,)
    ).fetchone()
    if named_as_init is None:
        ids = _flows_using(conn, object_id, flow_tags, after, limit + 1)
        if len(ids) > limit:
            ids = ids[:limit]
            return ids, cursor.encode([ids[-1]])
        return ids, None
    # An init object is used through the media objects that name it (schemas/object.json).
    where = [
        "(s.object_id = ? OR s.object_id IN (SELECT id FROM objects WHERE init_object_id = ?))"
    ]
    params: list[Any] = [object_id, object_id]
    # Soft-deleted flows keep their segments but are no flow of any TAMS answer.
    where.append("s.flow_id NOT IN (SELECT id FROM deleted_flows)")
    clauses, args = tag_clauses(flow_tags, "f", "flow_id", "flow_tags")
    if clauses:
        where.append(
            "EXISTS (SELECT 1 FROM flows f WHERE f.id = s.flow_id AND "
            + " AND ".join(clauses)
            + ")"
        )
        params += args
    if after is not None:
        where.append("s.flow_id > ?")
        params.append(after)
    rows = conn.execute(
        f"SELECT DISTINCT s.flow_id FROM segments s WHERE {' AND '.join(where)} "
        "ORDER BY s.flow_id LIMIT ?",
        [*params, limit + 1],
    ).fetchall()
    ids = [r[0] for r in rows]
    if len(ids) > limit:
        ids = ids[:limit]
        return ids, cursor.encode([ids[-1]])
    return ids, None
