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
`add_segments` and `delete_segments`: the first is the correctness bound of the overlap
predicate and only ever grows while the flow has segments (still safe when some are
deleted); the second is the flow's number of segments (an analytics figure, and what sizes
the windows: a wrong count would cost a query more, never a wrong answer).

Every write here also keeps the analytics counters (`counters`): the flow's figures in its
`flows` row, written with its extent, and the sums at the end of the transaction.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ibis import _

from tams_store import cursor, segment_tags
from tams_store.port import (
    MediaJob,
    ObjectAllocation,
    ObjectRecord,
    SegmentPage,
    SegmentRecord,
    TagFilter,
)
from tams_store.vast import counters, lifecycle, locks
from tams_store.vast.catalog import OwnerFilter, apply_tag_filter, flow_extent, forget_flow
from tams_store.vast.counters import FLOW_FIGURE_COLUMNS, Figures, SegmentUse, group_of
from tams_store.vast.ordered import first_distinct, first_rows
from tams_store.vast.tables import Predicate, Row, Tables, all_of, in_chunks, take

MIN_NS = -(2**63)
MAX_NS = 2**63 - 1
SEGMENT_COLUMNS = ("seg_start", "seg_end", "object_id", "timerange", "doc", "tags")


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
    also: Predicate | None = None,
    columns: Sequence[str] = SEGMENT_COLUMNS,
) -> list[Row]:
    """The first `want` segments by `seg_start` (the last ones if `reverse`) with
    lo <= seg_start < hi (and seg_end > overlaps_from, the object, and `also`, if given)."""
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
            also,
        )
        rows = segments.rows(columns, where, limit_rows=cap + 1)
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


def segment_record(row: Row) -> SegmentRecord:
    return SegmentRecord(
        start=row["seg_start"],
        end=row["seg_end"],
        object_id=row["object_id"],
        timerange=row["timerange"],
        doc=json.loads(row["doc"]),
        created_ns=row.get("created_ns") or 0,
        tags=segment_tags.decode(row.get("tags")),
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
    tags: TagFilter | None = None,
    scan_limit: int = 1,
) -> SegmentPage:
    """One page of a flow's segments in time order (keyset on seg_start); with a tag filter,
    the matches among at most `scan_limit` segments (port.ReadTx.list_segments)."""
    extent = flow_extent(tables, flow_id)
    if extent is None:
        return SegmentPage(items=[], limit=limit)
    lo, hi, overlaps_from = MIN_NS, MAX_NS, None
    if bounds is not None:
        q_start, q_end = bounds
        lo, hi, overlaps_from = max(MIN_NS, q_start - (extent["max_seg_dur"] or 0)), q_end, q_start
    if page is not None:
        (after,) = cursor.decode(page, (int,))
        if reverse:
            hi = min(hi, after)
        else:
            lo = max(lo, after + 1)
    if segment_tags.filters(tags):
        assert tags is not None
        return _tagged_page(
            tables,
            flow_id,
            extent,
            (lo, hi, overlaps_from),
            object_id,
            reverse,
            limit,
            tags,
            scan_limit,
        )
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
    return SegmentPage(items=[segment_record(r) for r in rows], limit=limit, next_key=next_key)


# Segments read per window while looking for tag matches (a filter VAST cannot evaluate:
# the tags are a JSON cell, matched here).
TAG_SCAN_CHUNK = 1000


def _tagged_page(
    tables: Tables,
    flow_id: str,
    extent: Row,
    window: tuple[int, int, int | None],
    object_id: str | None,
    reverse: bool,
    limit: int,
    tags: TagFilter,
    scan_limit: int,
) -> SegmentPage:
    """The tag matches among the next `scan_limit` segments, read in time order in chunks
    (each chunk is an ordinary bounded segment page); a short page when the scan stops at its
    bound, continuing after the last segment examined."""
    lo, hi, overlaps_from = window
    matched: list[Row] = []
    examined = 0
    while True:
        want = min(TAG_SCAN_CHUNK, scan_limit - examined)
        rows = find_segments(
            tables,
            flow_id,
            extent,
            lo=lo,
            hi=hi,
            overlaps_from=overlaps_from,
            object_id=object_id,
            reverse=reverse,
            want=want,
        )
        examined += len(rows)
        for row in rows:
            if segment_tags.matches(segment_tags.decode(row.get("tags")), tags):
                matched.append(row)
                if len(matched) > limit:
                    kept = matched[:limit]
                    key = cursor.encode([kept[-1]["seg_start"]])
                    return SegmentPage(
                        items=[segment_record(r) for r in kept], limit=limit, next_key=key
                    )
        if len(rows) < want:
            return SegmentPage(items=[segment_record(r) for r in matched], limit=limit)
        last = rows[-1]["seg_start"]
        if examined >= scan_limit:
            key = cursor.encode([last])
            return SegmentPage(
                items=[segment_record(r) for r in matched], limit=limit, next_key=key
            )
        if reverse:
            hi = last
        else:
            lo = last + 1


def replace_segment_tags(
    tables: Tables, flow_id: str, tags: Mapping[int, Mapping[str, Any]], segments_updated: str
) -> None:
    """Replace the tags of the flow's segments starting at these starts and stamp the flow."""
    table = tables["segments"]
    where = _.flow_id == flow_id
    found = table.select_in(["seg_start"], "seg_start", list(tags), where, row_ids=True)
    starts = [r["seg_start"] for r in found.select(["seg_start"]).to_pylist()]
    table.update_each(found, [{"tags": segment_tags.encode(tags[start])} for start in starts])
    forget_flow(tables, flow_id)
    flows = tables["flows"]
    flows.update(
        flows.select(["id"], _.id == flow_id, row_ids=True), {"segments_updated": segments_updated}
    )


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


def segments_within(
    tables: Tables, flow_id: str, bounds: tuple[int, int], object_id: str | None, limit: int
) -> list[SegmentRecord]:
    """The first `limit` segments lying wholly inside [q_start, q_end), in time order."""
    extent = flow_extent(tables, flow_id)
    if extent is None:
        return []
    q_start, q_end = bounds
    rows = find_segments(
        tables,
        flow_id,
        extent,
        lo=q_start,
        hi=q_end,
        overlaps_from=None,
        object_id=object_id,
        reverse=False,
        want=limit,
        also=_.seg_end <= q_end,
        columns=(*SEGMENT_COLUMNS, "created_ns"),
    )
    return [segment_record(r) for r in rows]


_FLOW_COLUMNS = ["format", "codec", "seg_start", "seg_end", "max_seg_dur", *FLOW_FIGURE_COLUMNS]


def _uses(
    tables: Tables, rows: Iterable[tuple[int, int, str]], known: dict[str, ObjectProps]
) -> list[SegmentUse]:
    """Segments (start, end, object id) with what the counters need of their objects."""
    bounds = list(rows)
    props = {**object_props(tables, [o for _s, _e, o in bounds if o not in known]), **known}
    return [SegmentUse(s, e, *props.get(o, (None, None))) for s, e, o in bounds]


def add_segments(
    tables: Tables,
    flow_id: str,
    segments: Sequence[SegmentRecord],
    objects: Sequence[ObjectRecord],
    segments_updated: str,
) -> None:
    """Register the new objects, insert the segments, extend the flow's extent and count
    them (objects first: their sizes are then known when the segments are counted)."""
    if not segments:
        return
    known = register_objects(tables, objects)
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
    forget_flow(tables, flow_id)
    flows = tables["flows"]
    found = flows.select(_FLOW_COLUMNS, _.id == flow_id, row_ids=True)
    rows = found.select(_FLOW_COLUMNS).to_pylist()
    if not rows:
        return  # no such flow: nothing to extend or count (the services never do this)
    uses = _uses(tables, ((s.start, s.end, s.object_id) for s in segments), known)
    change = counters.segments_changed(tables, flow_id, group_of(rows[0]), uses, +1)
    longest = max(s.end - s.start for s in segments)
    start, end = min(s.start for s in segments), max(s.end for s in segments)
    flows.update_each(
        found,
        [
            {
                "seg_start": start if row["seg_start"] is None else min(row["seg_start"], start),
                "seg_end": end if row["seg_end"] is None else max(row["seg_end"], end),
                "max_seg_dur": max(row["max_seg_dur"] or 0, longest),
                **(Figures.of_flow(row) + change).flow_columns(),
                "segments_updated": segments_updated,
            }
            for row in rows
        ],
    )


def delete_segments(
    tables: Tables, flow_id: str, starts: Sequence[int], segments_updated: str
) -> None:
    """Delete the flow's segments starting at `starts`, count them out, and shrink the flow's
    extent to its first and last remaining segment (a bounded window search from each old
    end, only at an end a deleted segment held)."""
    table = tables["segments"]
    columns = ["seg_start", "seg_end", "object_id"]
    found = table.select_in(columns, "seg_start", starts, _.flow_id == flow_id, row_ids=True)
    gone = [
        (r["seg_start"], r["seg_end"], r["object_id"]) for r in found.select(columns).to_pylist()
    ]
    table.delete(found)
    extent = flow_extent(tables, flow_id)  # as it was: a superset of what is left
    forget_flow(tables, flow_id)
    flows = tables["flows"]
    selected = flows.select(_FLOW_COLUMNS, _.id == flow_id, row_ids=True)
    rows = selected.select(_FLOW_COLUMNS).to_pylist()
    if not rows or extent is None:
        return
    change = counters.segments_changed(
        tables, flow_id, group_of(rows[0]), _uses(tables, gone, {}), -1
    )
    first, last = extent["seg_start"], extent["seg_end"]
    if gone and first is not None:
        if min(s for s, _e, _o in gone) <= first:
            edge = _edge(tables, flow_id, extent, reverse=False)
            first = None if edge is None else edge["seg_start"]
        if first is not None and max(e for _s, e, _o in gone) >= last:
            edge = _edge(tables, flow_id, extent, reverse=True)
            last = None if edge is None else edge["seg_end"]
        if first is None or last is None:
            first = last = None
    flows.update_each(
        selected,
        [
            {
                "seg_start": first,
                "seg_end": last,
                # Empty again: forget the longest-segment bound too.
                "max_seg_dur": 0 if first is None else (row["max_seg_dur"] or 0),
                **(Figures.of_flow(row) + change).flow_columns(),
                "segments_updated": segments_updated,
            }
            for row in rows
        ],
    )


def _edge(tables: Tables, flow_id: str, extent: Row, *, reverse: bool) -> Row | None:
    """The flow's first (or last) segment, searched within its previous extent."""
    found = find_segments(
        tables,
        flow_id,
        extent,
        lo=MIN_NS,
        hi=MAX_NS,
        overlaps_from=None,
        object_id=None,
        reverse=reverse,
        want=1,
    )
    return found[0] if found else None


# --- objects ---------------------------------------------------------------------------------

OBJECT_COLUMNS = (
    "id",
    "allocated_flow_id",
    "storage_id",
    "content_type",
    "registered",
    "first_referenced_by_flow",
    "doc",
    "size",
    "allocated_ns",
)
# What the counters need of an object: its size and its init object.
ObjectProps = tuple[int | None, str | None]
# What the storage counters need of an `objects` row.
_SHARE_COLUMNS = ["storage_id", "registered", "size", "doc"]


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
            size=row["size"],
            allocated_ns=row["allocated_ns"] or 0,
        )
    return found


def object_props(tables: Tables, object_ids: Sequence[str]) -> dict[str, ObjectProps]:
    rows = tables["objects"].rows_in(["id", "size", "init_object_id"], "id", object_ids)
    return {r["id"]: (r["size"], r["init_object_id"]) for r in rows}


def _stored_ids(tables: Tables, object_ids: Sequence[str]) -> set[str]:
    return {r["id"] for r in tables["objects"].rows_in(["id"], "id", object_ids)}


def existing_object_ids(tables: Tables, object_ids: Sequence[str]) -> set[str]:
    """Ids in use: objects, and ids whose bytes are still queued for deletion or copy.

    Callers decide on an id's absence (a client-chosen allocation, an external object's
    first record): the ids' key locks are taken, so two such decisions on one id in
    overlapping transactions cannot both commit (`locks`)."""
    locks.lock_keys(tables, "object", object_ids)
    queued = tables["media_jobs"].rows_in(["object_id"], "object_id", object_ids)
    return _stored_ids(tables, object_ids) | {r["object_id"] for r in queued}


def allocate_objects(tables: Tables, allocations: Sequence[ObjectAllocation]) -> None:
    # Ids already present were allocated by this very work in an attempt whose commit
    # landed although it seemed to fail: skip them, so the retry adds no duplicates.
    present = _stored_ids(tables, [a.object_id for a in allocations])
    new = [a for a in {a.object_id: a for a in allocations}.values() if a.object_id not in present]
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
            for a in new
        ]
    )
    counters.objects_changed(
        tables, [], [{"storage_id": a.storage_id, "registered": False} for a in new]
    )


def register_objects(tables: Tables, objects: Sequence[ObjectRecord]) -> dict[str, ObjectProps]:
    """Mark objects registered (first use) or record external ones, with their properties.
    Returns their size and init object as now stored."""
    if not objects:
        return {}
    table = tables["objects"]
    by_id = {o.object_id: o for o in objects}
    columns = ["id", "init_object_id", *_SHARE_COLUMNS]
    found = table.select_in(columns, "id", list(by_id), row_ids=True)
    before = found.select(columns).to_pylist()
    stored: dict[str, ObjectProps] = {}
    after: list[Row] = []
    changes: list[Row] = []
    _recount_used(tables, before, by_id)
    for row in before:
        record = by_id[row["id"]]
        size = row["size"] if record.size is None else record.size  # a known size stays
        stored[record.object_id] = (size, record.init_object_id)
        after.append(
            {
                "storage_id": row["storage_id"],
                "registered": True,
                "size": size,
                "doc": record.doc,
            }
        )
        changes.append(
            {
                "registered": True,
                "first_referenced_by_flow": record.first_referenced_by_flow,
                "doc": json.dumps(record.doc),
                "init_object_id": record.init_object_id,
                "size": size,
            }
        )
    table.update_each(found, changes)
    new = [o for o in by_id.values() if o.object_id not in stored]
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
                "init_object_id": o.init_object_id,
                "size": o.size,
            }
            for o in new
        ]
    )
    stored.update((o.object_id, (o.size, o.init_object_id)) for o in new)
    after += [
        {"storage_id": o.storage_id, "registered": True, "size": o.size, "doc": o.doc} for o in new
    ]
    counters.objects_changed(tables, before, after)
    return stored


def _segments_per_flow(tables: Tables, object_id: str) -> Counter[str]:
    """How many segments of each flow use this object (the `segments_by_object` projection
    serves it)."""
    rows = tables["segments"].rows(["flow_id"], _.object_id == object_id)
    return Counter(r["flow_id"] for r in rows)


def _recount_used(tables: Tables, rows: Sequence[Row], by_id: Mapping[str, ObjectRecord]) -> None:
    """Registered objects (`rows`, as stored) about to take the size and init object of
    `by_id`: segments already using them are counted again, per flow, with the new size
    and init object. The services never do this (an object's size is learned before its
    first registration, and its init object never changes); it is kept exact all the same,
    once per object whatever duplicate rows it has."""
    done: set[str] = set()
    for row in rows:
        record = by_id[row["id"]]
        old_size, new_size = row["size"], row["size"] if record.size is None else record.size
        old_init, new_init = row["init_object_id"], record.init_object_id
        if not row["registered"] or row["id"] in done:
            continue
        if old_size == new_size and old_init == new_init:
            continue
        done.add(row["id"])
        per_flow = _segments_per_flow(tables, row["id"])
        counters.init_refs_moved(tables, per_flow, old_init, new_init)
        if old_size != new_size:
            _resized(tables, per_flow, old_size, new_size)


def _resized(tables: Tables, per_flow: Mapping[str, int], old: int | None, new: int | None) -> None:
    """The flows using an object (`per_flow` segments each) count its new size."""
    flows = tables["flows"]
    for flow_id, n in per_flow.items():
        change = Figures(
            0, 0, n * ((new or 0) - (old or 0)), n * (int(new is None) - int(old is None))
        )
        found = flows.select(_FLOW_COLUMNS, _.id == flow_id, row_ids=True)
        rows = found.select(_FLOW_COLUMNS).to_pylist()
        if rows:
            counters.usage_changed(tables, group_of(rows[0]), change)
            flows.update_each(
                found, [(Figures.of_flow(row) + change).flow_columns() for row in rows]
            )


def update_objects(tables: Tables, objects: Sequence[ObjectRecord]) -> None:
    """Replace objects' documents (instances changed) and their recorded init object."""
    if not objects:
        return
    table = tables["objects"]
    by_id = {o.object_id: o for o in objects}
    columns = ["id", "init_object_id", *_SHARE_COLUMNS]
    found = table.select_in(columns, "id", list(by_id), row_ids=True)
    rows = found.select(columns).to_pylist()
    # Only the init object can change here (the size is kept as stored).
    _recount_used(tables, rows, {r["id"]: replace(by_id[r["id"]], size=r["size"]) for r in rows})
    # Instances added or removed move the object's share between backends.
    after = {r["id"]: {**r, "doc": by_id[r["id"]].doc} for r in rows}
    moved = [r for r in rows if counters.copies_of(r) != counters.copies_of(after[r["id"]])]
    counters.objects_changed(tables, moved, [after[r["id"]] for r in moved])
    table.update_each(
        found,
        [
            {"doc": json.dumps(by_id[r["id"]].doc), "init_object_id": by_id[r["id"]].init_object_id}
            for r in rows
        ],
    )


def _referenced(tables: Tables, table: str, column: str, ids: Iterable[str]) -> set[str]:
    """Which of these ids appear in `column` of `table` (one select per 256 distinct ids
    found, however many rows use each)."""
    found: set[str] = set()
    for chunk in in_chunks(list(ids)):
        found |= set(first_distinct(tables[table], column, _[column].isin(chunk), None))
    return found


def unreferenced_objects(tables: Tables, object_ids: Sequence[str]) -> list[str]:
    """Registered objects among these that no segment uses and no object names as its init
    object."""
    rows = tables["objects"].rows_in(["id", "registered"], "id", object_ids)
    candidates = {r["id"] for r in rows if r["registered"]}
    if not candidates:
        return []
    used = _referenced(tables, "segments", "object_id", candidates)
    named = _referenced(tables, "objects", "init_object_id", candidates - used)
    return sorted(candidates - used - named)


def expired_allocations(tables: Tables, allocated_before_ns: int, limit: int) -> list[ObjectRecord]:
    """Objects allocated before this time and never registered, oldest first."""
    oldest = first_rows(
        tables["objects"],
        ["id"],
        (_.registered == False) & (_.allocated_ns < allocated_before_ns),  # noqa: E712
        "allocated_ns",
        limit,
    )
    ids = list(dict.fromkeys(oldest["id"].to_pylist()))
    found = get_objects(tables, ids)
    return [found[i] for i in ids if i in found]


def remove_objects(tables: Tables, object_ids: Sequence[str]) -> None:
    table = tables["objects"]
    found = table.select_in(_SHARE_COLUMNS, "id", object_ids, row_ids=True)
    table.delete(found)
    counters.objects_changed(tables, found.select(_SHARE_COLUMNS).to_pylist(), [])


def fill_init_objects(tables: Tables) -> None:
    """The `Fill` of the step after which objects stored before step 5 read as registration
    has stored them since: each media object's `init_object_id` column (and the init
    references of its segments) from its document, and the init objects they name
    registered in the init role, first referenced by the first flow of the first media
    object naming them (as SQLite's steps 5 and 11)."""
    table = tables["objects"]
    columns = ["id", "doc", "first_referenced_by_flow", "allocated_ns"]
    found = table.select(
        columns,
        (_.registered == True) & _.init_object_id.isnull(),  # noqa: E712
        row_ids=True,
        scan=True,
    )
    rows = found.select(columns).to_pylist()
    named = [json.loads(r["doc"] or "{}").get("init_object_id") for r in rows]
    hits = [i for i, init in enumerate(named) if init is not None]
    table.update_each(take(found, hits), [{"init_object_id": str(named[i])} for i in hits])
    first_flow: dict[str, str | None] = {}
    for i in sorted(hits, key=lambda i: (rows[i]["allocated_ns"] or 0, rows[i]["id"])):
        counters.init_refs_moved(
            tables, _segments_per_flow(tables, rows[i]["id"]), None, str(named[i])
        )
        first_flow.setdefault(str(named[i]), rows[i]["first_referenced_by_flow"])
    inits = [*_SHARE_COLUMNS, "id"]
    unregistered = table.select_in(
        inits,
        "id",
        list(first_flow),
        _.registered == False,  # noqa: E712 (an ibis expression, not a test)
        row_ids=True,
    )
    before = unregistered.select(inits).to_pylist()
    table.update_each(
        unregistered,
        [
            {
                "registered": True,
                "first_referenced_by_flow": first_flow[r["id"]],
                "doc": json.dumps({**json.loads(r["doc"] or "{}"), "role": "init"}),
            }
            for r in before
        ],
    )
    counters.objects_changed(tables, before, [{**r, "registered": True} for r in before])
    counters.flush(tables)


def fill_release_unused(tables: Tables) -> None:
    """The `Fill` of the step that queues a `release` job (due now) for each registered
    object no segment uses and no object names as its init object: before step 5 a flow's
    deletion took its segments and left their objects so, waiting for no collection (as on
    SQLite before its step 6). The collector forgets them only if still unused when due; an
    object already waiting out its release grace keeps its job."""
    registered = tables["objects"].rows(["id"], _.registered == True, scan=True)  # noqa: E712
    unused = unreferenced_objects(tables, sorted({r["id"] for r in registered}))
    now_ns = time.time_ns()
    lifecycle.queue_media_jobs(
        tables, [MediaJob("release", i, "", now_ns, lease_until_ns=now_ns) for i in unused]
    )


def object_flows(
    tables: Tables, object_id: str, flow_tags: TagFilter, page: str | None, limit: int
) -> tuple[list[str], str | None]:
    """Flows with a segment using the object, or (an init object) using a media object that
    names it, filtered by the flows' tags, in id order. Segments are read as distinct flow
    ids (`first_distinct`: the `segments_by_object` projection serves it), the init object's
    flows from `init_refs`: bounded whatever the number of segments using the object."""
    owners = OwnerFilter()
    apply_tag_filter(tables, "flow_tags", "flow_id", flow_tags, owners)
    after: str | None = None
    if page is not None:
        (key,) = cursor.decode(page, (str,))
        after = key
    refs: Counter[str] = Counter()
    for row in tables["init_refs"].rows(["flow_id", "segments"], _.init_object_id == object_id):
        refs[row["flow_id"]] += row["segments"] or 0
    through_init = sorted(f for f, n in refs.items() if n > 0)
    chosen: list[str] = []
    while len(chosen) <= limit:
        want = limit + 1 - len(chosen)
        direct = first_distinct(
            tables["segments"], "flow_id", _.object_id == object_id, want, after=after
        )
        later = [f for f in through_init if after is None or f > after]
        candidates = sorted({*direct, *later})[:want]
        # Soft-deleted flows keep their segments but are no flow of any TAMS answer.
        live = {r["id"] for r in tables["flows"].rows_in(["id"], "id", candidates)}
        chosen += [f for f in candidates if owners.admits(f) and f in live]
        if len(candidates) < want:
            break
        after = candidates[-1]
    if len(chosen) > limit:
        chosen = chosen[:limit]
        return chosen, cursor.encode([chosen[-1]])
    return chosen, None
