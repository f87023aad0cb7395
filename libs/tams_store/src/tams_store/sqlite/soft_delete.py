"""Soft-deleted flows in SQLite (docs/ext-soft-delete.md, `soft_delete_schema.py`).

Hiding moves the flow's row to `deleted_flows` (its segments stay where they are, under its
id); restoring moves it back with its segment-owned columns. Every TAMS read joins or looks
up `flows`, so a hidden flow's segments are invisible without any read testing a flag; the
one read that starts from segments, an object's `referenced_by_flows`, skips hidden flows.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from tams_store import cursor
from tams_store.deleted_flows import record_json, record_of
from tams_store.port import DeletedFlowRecord, Doc, SegmentRecord
from tams_store.sqlite import catalog, media

_COLUMNS = "id, deleted_ns, purge_after_ns, purge_request_id, record"


def get_deleted_flow(conn: sqlite3.Connection, flow_id: str) -> DeletedFlowRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM deleted_flows WHERE id = ?", (flow_id,)).fetchone()
    return None if row is None else record_of(row)


def list_deleted_flows(
    conn: sqlite3.Connection, page: str | None, limit: int
) -> tuple[list[DeletedFlowRecord], str | None]:
    where = ""
    params: list[Any] = []
    if page is not None:
        after_ns, after_id = cursor.decode(page, (int, str))
        where = "WHERE (deleted_ns, id) < (?, ?)"
        params = [after_ns, after_id]
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM deleted_flows {where} ORDER BY deleted_ns DESC, id DESC LIMIT ?",
        [*params, limit + 1],
    ).fetchall()
    next_key = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_key = cursor.encode([rows[-1]["deleted_ns"], rows[-1]["id"]])
    return [record_of(r) for r in rows], next_key


def due_deleted_flows(conn: sqlite3.Connection, now_ns: int, limit: int) -> list[DeletedFlowRecord]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM deleted_flows WHERE purge_request_id IS NULL "
        "AND purge_after_ns <= ? ORDER BY purge_after_ns LIMIT ?",
        (now_ns, limit),
    )
    return [record_of(r) for r in rows]


def hide_flow(conn: sqlite3.Connection, record: DeletedFlowRecord) -> None:
    flow_id = record.flow_id
    state = conn.execute(
        "SELECT segments_updated, seg_start, seg_end, max_seg_dur FROM flows WHERE id = ?",
        (flow_id,),
    ).fetchone()
    if state is None:
        raise KeyError(f"flow {flow_id} does not exist")
    # The record first: the analytics triggers keep the figures of a flow that has one.
    conn.execute(
        "INSERT INTO deleted_flows (id, deleted_ns, purge_after_ns, purge_request_id, record, "
        "state) VALUES (?, ?, ?, NULL, ?, ?)",
        (
            flow_id,
            record.deleted_ns,
            record.purge_after_ns,
            record_json(record),
            json.dumps(dict(state)),
        ),
    )
    catalog.remove_from_collections(conn, flow_id)
    # Tags and the flow's own collection links go with the row (ON DELETE CASCADE).
    conn.execute("DELETE FROM flows WHERE id = ?", (flow_id,))


def restore_flow(conn: sqlite3.Connection, flow: Doc) -> None:
    flow_id = flow["id"]
    row = conn.execute("SELECT state FROM deleted_flows WHERE id = ?", (flow_id,)).fetchone()
    if row is None:
        raise KeyError(f"flow {flow_id} is not soft-deleted")
    state = json.loads(row["state"])
    catalog.put_flow(conn, flow)
    conn.execute(
        "UPDATE flows SET segments_updated = ?, seg_start = ?, seg_end = ?, max_seg_dur = ? "
        "WHERE id = ?",
        (
            state["segments_updated"],
            state["seg_start"],
            state["seg_end"],
            state["max_seg_dur"],
            flow_id,
        ),
    )
    conn.execute("DELETE FROM deleted_flows WHERE id = ?", (flow_id,))


def _forget_figures(conn: sqlite3.Connection, flow_id: str) -> None:
    if conn.execute("SELECT 1 FROM flows WHERE id = ?", (flow_id,)).fetchone() is not None:
        return  # never a live flow's figures
    for table in ("flow_stats", "flow_runs", "flow_buckets"):
        conn.execute(f"DELETE FROM {table} WHERE flow_id = ?", (flow_id,))


def start_purge(conn: sqlite3.Connection, flow_id: str, request_id: str) -> None:
    conn.execute(
        "UPDATE deleted_flows SET purge_request_id = ? WHERE id = ?", (request_id, flow_id)
    )
    # Without its figures the segment-removal trigger does nothing for this flow.
    _forget_figures(conn, flow_id)


def purge_segments(conn: sqlite3.Connection, flow_id: str, limit: int) -> list[SegmentRecord]:
    hidden = conn.execute(
        "SELECT 1 FROM deleted_flows WHERE id = ? AND purge_request_id IS NOT NULL", (flow_id,)
    ).fetchone()
    if hidden is None or conn.execute("SELECT 1 FROM flows WHERE id = ?", (flow_id,)).fetchone():
        return []
    rows = conn.execute(
        "DELETE FROM segments WHERE flow_id = ? AND seg_start IN "
        "(SELECT seg_start FROM segments WHERE flow_id = ? ORDER BY seg_start LIMIT ?) "
        "RETURNING seg_start, seg_end, object_id, timerange, doc, created_ns, tags",
        (flow_id, flow_id, limit),
    ).fetchall()
    records = [media.segment_record(r, r["created_ns"]) for r in rows]
    return sorted(records, key=lambda r: r.start)


def forget_deleted_flow(conn: sqlite3.Connection, flow_id: str) -> None:
    conn.execute("DELETE FROM deleted_flows WHERE id = ?", (flow_id,))
    _forget_figures(conn, flow_id)
