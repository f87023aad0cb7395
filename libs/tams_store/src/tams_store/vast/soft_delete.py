"""Soft-deleted flows on VAST (docs/ext-soft-delete.md).

Every write here may run twice (a transaction whose commit seemed to fail is run again,
docs/vast.md): hiding a flow already hidden, or restoring one already back, changes nothing.

Hiding moves the flow's `flows` row, as JSON, into `deleted_flows` (with the deletion
facts); its segments, runs, buckets and init references stay under its id. Every TAMS read
starts from `flows` (a flow's extent, its listing, analytics), so the hidden flow's segments
are invisible; an object's `referenced_by_flows`, which starts from segments, keeps only live
flows. The counters follow the move: the flow and its figures leave the totals when it is
hidden and come back with it; its runs, buckets and init references are dropped when its
purge starts (it can no longer come back then).
"""

from __future__ import annotations

import json
from typing import Any

from ibis import _

from tams_store import cursor
from tams_store.deleted_flows import record_json, record_of
from tams_store.port import DeletedFlowRecord, Doc, SegmentRecord
from tams_store.vast import catalog, counters, media
from tams_store.vast.counters import Figures, group_of
from tams_store.vast.listing import newest_per_id
from tams_store.vast.ordered import first_rows
from tams_store.vast.tables import Row, Tables, all_of

_COLUMNS = ["id", "deleted_ns", "purge_after_ns", "purge_request_id", "record"]
# The columns of a `flows` row the segments service owns, restored as they were.
_SEGMENT_STATE = (
    "segments_updated",
    "seg_start",
    "seg_end",
    "max_seg_dur",
    *counters.FLOW_FIGURE_COLUMNS,
)


def _one(rows: list[Row]) -> Row | None:
    """The row of an id (a racing duplicate: the one whose purge started, if any)."""
    if not rows:
        return None
    return sorted(rows, key=lambda r: (r["purge_request_id"] is None, r["deleted_ns"]))[0]


def get_deleted_flow(tables: Tables, flow_id: str) -> DeletedFlowRecord | None:
    row = _one(tables["deleted_flows"].rows(_COLUMNS, _.id == flow_id))
    return None if row is None else record_of(row)


def list_deleted_flows(
    tables: Tables, page: str | None, limit: int
) -> tuple[list[DeletedFlowRecord], str | None]:
    """Most recently deleted first, then by id (descending): key columns of every row, sorted
    here, then the records of the page (deleted flows are few: retention bounds them)."""
    after: tuple[int, str] | None = None
    if page is not None:
        key = cursor.decode(page, (int, str))
        after = (key[0], key[1])
    where = None if after is None else _.deleted_ns <= after[0]
    keys = {
        (r["deleted_ns"], r["id"])
        for r in tables["deleted_flows"].rows(["id", "deleted_ns"], where, scan=True)
    }
    ordered = sorted((k for k in keys if after is None or k < after), reverse=True)
    chosen = ordered[:limit]
    next_key = cursor.encode(list(chosen[-1])) if len(ordered) > limit else None
    found = tables["deleted_flows"].rows_in(_COLUMNS, "id", [i for _n, i in chosen])
    by_id: dict[str, list[Row]] = {}
    for row in found:
        by_id.setdefault(row["id"], []).append(row)
    records = [_one(by_id.get(i, [])) for _n, i in chosen]
    return [record_of(r) for r in records if r is not None], next_key


def due_deleted_flows(tables: Tables, now_ns: int, limit: int) -> list[DeletedFlowRecord]:
    oldest = first_rows(
        tables["deleted_flows"],
        _COLUMNS,
        all_of(_.purge_request_id.isnull(), _.purge_after_ns <= now_ns),
        "purge_after_ns",
        limit,
    )
    rows = {r["id"]: r for r in oldest.to_pylist()}
    return [record_of(r) for r in sorted(rows.values(), key=lambda r: r["purge_after_ns"])]


def hide_flow(tables: Tables, record: DeletedFlowRecord) -> None:
    flow_id = record.flow_id
    flows = tables["flows"]
    columns = list(flows.spec.column_names)
    found = flows.select(columns, _.id == flow_id, row_ids=True)
    rows: list[Row] = found.select(columns).to_pylist()
    newest = newest_per_id(rows, "metadata_updated_ns")
    if not newest:
        if tables["deleted_flows"].rows(["id"], _.id == flow_id, limit_rows=1):
            return  # a retry of a transaction whose commit landed: hidden already
        raise KeyError(f"flow {flow_id} does not exist")
    state = {c: newest[0].get(c) for c in _SEGMENT_STATE}
    tables["deleted_flows"].upsert(
        "id",
        {
            "id": flow_id,
            "deleted_ns": record.deleted_ns,
            "purge_after_ns": record.purge_after_ns,
            "purge_request_id": None,
            "record": record_json(record),
            "state": json.dumps(state),
        },
        insert_only={},
    )
    catalog.forget_flow(tables, flow_id)
    catalog.remove_from_collections(tables, flow_id)
    tables["flow_collections"].delete_where(_.collector_id == flow_id)
    tables["flow_tags"].delete_where(_.flow_id == flow_id)
    # The flow and its figures leave the totals; its runs and buckets stay for a restore.
    counters.usage_changed(tables, group_of(newest[0]), -Figures.of_flow(newest[0]))
    counters.flow_rows_changed(tables, [], [group_of(r) for r in rows])
    flows.delete(found)


def restore_flow(tables: Tables, flow: Doc) -> None:
    flow_id = flow["id"]
    hidden = tables["deleted_flows"]
    found = hidden.select(["id", "deleted_ns", "state"], _.id == flow_id, row_ids=True)
    rows: list[Row] = found.select(["id", "deleted_ns", "state"]).to_pylist()
    if not rows:
        if _is_live(tables, flow_id):
            return  # a retry of a transaction whose commit landed: restored already
        raise KeyError(f"flow {flow_id} is not soft-deleted")
    state: dict[str, Any] = json.loads(max(rows, key=lambda r: r["deleted_ns"])["state"])
    catalog.put_flow(tables, flow)  # a new row: the flow joins its group's flow count
    flows = tables["flows"]
    inserted = flows.select(["id"], _.id == flow_id, row_ids=True)
    flows.update_each(inserted, [dict(state)] * inserted.num_rows)
    counters.usage_changed(tables, group_of(flow), Figures.of_flow(state))
    catalog.forget_flow(tables, flow_id)
    hidden.delete(found)


def start_purge(tables: Tables, flow_id: str, request_id: str) -> None:
    hidden = tables["deleted_flows"]
    found = hidden.select(["id"], _.id == flow_id, row_ids=True)
    hidden.update(found, {"purge_request_id": request_id})
    if not _is_live(tables, flow_id):
        counters.flow_forgotten(tables, flow_id)


def _is_live(tables: Tables, flow_id: str) -> bool:
    return bool(tables["flows"].rows(["id"], _.id == flow_id, limit_rows=1))


def purge_segments(tables: Tables, flow_id: str, limit: int) -> list[SegmentRecord]:
    hidden = tables["deleted_flows"].rows(["id", "purge_request_id"], _.id == flow_id)
    started = any(r["purge_request_id"] is not None for r in hidden)
    if not started or _is_live(tables, flow_id):
        return []
    segments = tables["segments"]
    columns = ["seg_start", "seg_end", "object_id", "timerange", "doc", "created_ns", "tags"]
    found = segments.select(columns, _.flow_id == flow_id, row_ids=True, limit_rows=limit)
    segments.delete(found)
    records = [media.segment_record(r) for r in found.select(columns).to_pylist()]
    return sorted(records, key=lambda r: r.start)


def forget_deleted_flow(tables: Tables, flow_id: str) -> None:
    tables["deleted_flows"].delete_where(_.id == flow_id)
    if not _is_live(tables, flow_id):
        counters.flow_forgotten(tables, flow_id)
