"""Segments and objects on VAST.

Segments live in a table sorted on (flow_id, seg_start), so the server prunes by flow and
start time, but it neither orders nor pages: rows come back in any order and `limit_rows`
returns *any* n matching rows. A page is therefore found by scanning bounded windows of
`seg_start`, starting at the cursor:

* the overlap test uses the bounded predicate `seg_start < q_end AND seg_start >= q_start -
  max_seg_dur AND seg_end > q_start` (every segment overlapping q starts in that range);
* the first window is `limit + 1` times the flow's mean segment spacing wide (plus
  `max_seg_dur` of slack below the query's start), so it holds about limit + 2 segments in a
  regular flow, whatever the position in the flow;
* the next window is sized for the rows still missing from the spacing the last window
  showed (four times wider after an empty one), so a gap or an `object_id` filter costs a
  few queries, not one per window;
* a window that comes back with more rows than the cap (`limit_rows` makes it tell us) had
  its rows picked arbitrarily; it is retried narrower, ending just past the `need`-th
  closest start among those rows (a dense burst shrinks by rows, not by halving time);
* the rows are sorted here and cut at the limit; the cursor is the last `seg_start`.

So a page costs one query of at most about twice `limit` rows in a regular flow, at its
start, middle or end alike. `max_seg_dur` and `seg_count` are kept per flow by
`add_segments`: the first is the correctness bound of the overlap predicate and only ever
grows (still safe when segments are deleted); the second only sizes windows (an estimate:
a stale count costs a query more, never a wrong answer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ibis import _

from tams_store import cursor
from tams_store.port import (
    InvalidPageKey,
    ObjectAllocation,
    ObjectRecord,
    SegmentPage,
    SegmentRecord,
    TagFilter,
)
from tams_store.vast.catalog import OwnerFilter, apply_tag_filter, flow_extent, forget_flow
from tams_store.vast.tables import Row, Tables, all_of

MIN_NS = -(2**63)
MAX_NS = 2**63 - 1
SEGMENT_COLUMNS = ("seg_start", "seg_end", "object_id", "timerange", "doc")


def _window_cap(want: int) -> int:
    """The most rows one window query may return before it is narrowed instead."""
    return 2 * want + 8


def find_segments(
    tables: Tables,
    flow_id: str,
    extent: Row,
    *,
    lo: int,
    hi: int,
    overlaps_from: int | None,
    object_id: str | None,
    reverse: bool,
    want: int,
) -> list[Row]:
    """The first `want` segments by `seg_start` (the last ones if `reverse`) with
    lo <= seg_start < hi (and seg_end > overlaps_from, and the object, if given)."""
    if extent["seg_start"] is None:
        return []
    lo = max(lo, extent["seg_start"])
    hi = min(hi, extent["seg_end"])
    # `spacing` estimates the distance between segment starts near the window: first the
    # flow's mean, then what the last window showed. A window `need * spacing` wide holds
    # about the `need` segments still missing.
    spacing = max(1, (extent["seg_end"] - extent["seg_start"]) // max(1, extent["seg_count"] or 1))
    slack = 0 if reverse or overlaps_from is None else max(0, overlaps_from - lo)
    width = want * spacing + slack
    cap = _window_cap(want)
    segments = tables["segments"]
    found: list[Row] = []
    while len(found) < want and lo < hi:
        need = want - len(found)
        if reverse:
            start, end = max(lo, hi - width), hi
        else:
            start, end = lo, min(hi, lo + width)
        where = all_of(
            _.flow_id == flow_id,
            _.seg_start >= start,
            _.seg_start < end,
            None if overlaps_from is None else _.seg_end > overlaps_from,
            None if object_id is None else _.object_id == object_id,
        )
        rows = segments.rows(SEGMENT_COLUMNS, where, limit_rows=cap + 1)
        if len(rows) > cap and end - start > 1:
            # Too many to trust: these are an arbitrary subset. The `need`-th closest start
            # among them is no closer than the `need`-th closest in the window, so a window
            # reaching just past it still holds every segment wanted; it is also narrower.
            starts = sorted(r["seg_start"] for r in rows)
            narrower = end - starts[-need] if reverse else starts[need - 1] + 1 - start
            width = max(1, min(narrower, end - start - 1))
            spacing = max(1, width // need)
            continue
        found += rows
        if reverse:
            hi = start
        else:
            lo = end
        # Gaps, longer segments or a filter: look further; a dense stretch: look closer.
        spacing = spacing * 4 if not rows else max(1, (end - start) // len(rows))
        width = max(1, (want - len(found)) * spacing)
    found.sort(key=lambda r: r["seg_start"], reverse=reverse)
    return found[:want]


def _record(row: Row) -> SegmentRecord:
    return SegmentRecord(
        start=row["seg_start"],
        end=row["seg_end"],
        object_id=row["object_id"],
        timerange=row["timerange"],
        doc=json.loads(row["doc"]),
        created_ns=0,
    )


def list_segments(
    tables: Tables,
    flow_id: str,
    *,
    bounds: tuple[int, int] | None,
    object_id: str | None,
    reverse: bool,
    page: str | None,
    limit: int,
) -> SegmentPage:
    """One page of a flow's segments in time order (keyset on seg_start)."""
    extent = flow_extent(tables, flow_id)
    if extent is None:
        return SegmentPage(items=[], limit=limit)
    lo, hi, overlaps_from = MIN_NS, MAX_NS, None
    if bounds is not None:
        q_start, q_end = bounds
        lo, hi, overlaps_from = max(MIN_NS, q_start - (extent["max_seg_dur"] or 0)), q_end, q_start
    if page is not None:
        (after,) = cursor.decode(page, 1)
        if type(after) is not int:
            raise InvalidPageKey(f"{page!r} is not a page key for this listing")
        if reverse:
            hi = min(hi, after)
        else:
            lo = max(lo, after + 1)
    rows = find_segments(
        tables,
        flow_id,
        extent,
        lo=lo,
        hi=hi,
        overlaps_from=overlaps_from,
        object_id=object_id,
        reverse=reverse,
        want=limit + 1,
    )
    next_key = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_key = cursor.encode([rows[-1]["seg_start"]])
    return SegmentPage(items=[_record(r) for r in rows], limit=limit, next_key=next_key)


def first_and_last(
    tables: Tables, flow_id: str, bounds: tuple[int, int] | None
) -> tuple[str, str] | None:
    """Timeranges of the first and last segment (overlapping `bounds`, if given)."""
    extent = flow_extent(tables, flow_id)
    if extent is None:
        return None
    lo, hi, overlaps_from = MIN_NS, MAX_NS, None
    if bounds is not None:
        q_start, q_end = bounds
        lo, hi, overlaps_from = max(MIN_NS, q_start - (extent["max_seg_dur"] or 0)), q_end, q_start
    ends = []
    for reverse in (False, True):
        rows = find_segments(
            tables,
            flow_id,
            extent,
            lo=lo,
            hi=hi,
            overlaps_from=overlaps_from,
            object_id=None,
            reverse=reverse,
            want=1,
        )
        if not rows:
            return None
        ends.append(rows[0]["timerange"])
    return ends[0], ends[1]


def overlapping(tables: Tables, flow_id: str, start: int, end: int) -> list[tuple[int, int]]:
    """Bounds of the earliest segment overlapping [start, end), if any."""
    extent = flow_extent(tables, flow_id)
    if extent is None:
        return []
    rows = find_segments(
        tables,
        flow_id,
        extent,
        lo=max(MIN_NS, start - (extent["max_seg_dur"] or 0)),
        hi=end,
        overlaps_from=start,
        object_id=None,
        reverse=False,
        want=1,
    )
    return [(r["seg_start"], r["seg_end"]) for r in rows]


def add_segments(
    tables: Tables,
    flow_id: str,
    segments: Sequence[SegmentRecord],
    objects: Sequence[ObjectRecord],
    segments_updated: str,
) -> None:
    """Insert segments, register their new objects, and extend the flow's extent."""
    if not segments:
        return
    tables["segments"].insert(
        [
            {
                "flow_id": flow_id,
                "seg_start": s.start,
                "seg_end": s.end,
                "object_id": s.object_id,
                "timerange": s.timerange,
                "doc": json.dumps(s.doc),
                "created_ns": s.created_ns,
            }
            for s in segments
        ]
    )
    register_objects(tables, objects)
    forget_flow(tables, flow_id)
    flows = tables["flows"]
    columns = ["seg_start", "seg_end", "max_seg_dur", "seg_count"]
    found = flows.select(columns, _.id == flow_id, row_ids=True)
    longest = max(s.end - s.start for s in segments)
    start, end = min(s.start for s in segments), max(s.end for s in segments)
    flows.update_each(
        found,
        [
            {
                "seg_start": start if row["seg_start"] is None else min(row["seg_start"], start),
                "seg_end": end if row["seg_end"] is None else max(row["seg_end"], end),
                "max_seg_dur": max(row["max_seg_dur"] or 0, longest),
                "seg_count": (row["seg_count"] or 0) + len(segments),
                "segments_updated": segments_updated,
            }
            for row in found.select(columns).to_pylist()
        ],
    )


# --- objects ---------------------------------------------------------------------------------

OBJECT_COLUMNS = (
    "id",
    "allocated_flow_id",
    "storage_id",
    "content_type",
    "registered",
    "first_referenced_by_flow",
    "doc",
)


def get_objects(tables: Tables, object_ids: Sequence[str]) -> dict[str, ObjectRecord]:
    found: dict[str, ObjectRecord] = {}
    for row in tables["objects"].rows_in(OBJECT_COLUMNS, "id", object_ids):
        current = found.get(row["id"])
        if current is not None and current.registered and not row["registered"]:
            continue  # a duplicate row: the registered one wins
        found[row["id"]] = ObjectRecord(
            object_id=row["id"],
            allocated_flow_id=row["allocated_flow_id"],
            storage_id=row["storage_id"],
            content_type=row["content_type"],
            registered=bool(row["registered"]),
            first_referenced_by_flow=row["first_referenced_by_flow"],
            doc=json.loads(row["doc"] or "{}"),
        )
    return found


def existing_object_ids(tables: Tables, object_ids: Sequence[str]) -> set[str]:
    return {r["id"] for r in tables["objects"].rows_in(["id"], "id", object_ids)}


def allocate_objects(tables: Tables, allocations: Sequence[ObjectAllocation]) -> None:
    # Ids already present were allocated by this very work in an attempt whose commit
    # landed although it seemed to fail: skip them, so the retry adds no duplicates.
    present = existing_object_ids(tables, [a.object_id for a in allocations])
    tables["objects"].insert(
        [
            {
                "id": a.object_id,
                "allocated_flow_id": a.flow_id,
                "storage_id": a.storage_id,
                "content_type": a.content_type,
                "allocated_ns": a.allocated_ns,
                "registered": False,
                "doc": "{}",
            }
            for a in allocations
            if a.object_id not in present
        ]
    )


def register_objects(tables: Tables, objects: Sequence[ObjectRecord]) -> None:
    """Mark objects registered (first use) or record external ones, with their properties."""
    if not objects:
        return
    table = tables["objects"]
    by_id = {o.object_id: o for o in objects}
    found = table.select_in(["id"], "id", list(by_id), row_ids=True)
    found_ids = found.column("id").to_pylist()
    known = set(found_ids)
    table.update_each(
        found,
        [
            {
                "registered": True,
                "first_referenced_by_flow": by_id[i].first_referenced_by_flow,
                "doc": json.dumps(by_id[i].doc),
            }
            for i in found_ids
        ],
    )
    table.insert(
        [
            {
                "id": o.object_id,
                "allocated_flow_id": o.allocated_flow_id,
                "storage_id": o.storage_id,
                "content_type": o.content_type,
                "allocated_ns": 0,
                "registered": True,
                "first_referenced_by_flow": o.first_referenced_by_flow,
                "doc": json.dumps(o.doc),
            }
            for o in objects
            if o.object_id not in known
        ]
    )


def object_flows(
    tables: Tables, object_id: str, flow_tags: TagFilter, page: str | None, limit: int
) -> tuple[list[str], str | None]:
    """Flows with a segment using the object (the `segments_by_object` projection serves
    this), filtered by the flows' tags, in id order."""
    flow_ids = {
        r["flow_id"] for r in tables["segments"].rows(["flow_id"], _.object_id == object_id)
    }
    owners = OwnerFilter()
    apply_tag_filter(tables, "flow_tags", "flow_id", flow_tags, owners)
    ids = sorted(i for i in flow_ids if owners.admits(i))
    if page is not None:
        (after,) = cursor.decode(page, 1)
        ids = [i for i in ids if i > str(after)]
    if len(ids) > limit:
        ids = ids[:limit]
        return ids, cursor.encode([ids[-1]])
    return ids, None
