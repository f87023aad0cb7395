"""Analytics counters on VAST, kept by the adapter's own write paths (docs/analytics.md).

SQLite keeps these figures with triggers; VAST has none, so every write path of this adapter
that inserts, changes or deletes flows, sources, segments or objects reports the change here,
in the same transaction, and the figures stay exact without any request scanning the
segments:

* a flow's usage (`seg_count`, `duration_ns`, `bytes`, `unsized`) lives in its own `flows`
  row, which segment writes update anyway (the extent), so it costs no extra request;
* store-wide sums (flows and usage per format and codec, sources per format, objects per
  storage backend) live in `totals`, split in `SHARDS` shards: a transaction adds all its
  changes to one shard chosen at random, so concurrent writers seldom touch the same row,
  and a retried transaction usually picks another. A figure is the sum of its rows, so a
  duplicate row (two racing inserts) is harmless;
* `flow_buckets` (segments per flow and hour of their start) and `init_refs` (segments per
  init object and flow) are sums too;
* `flow_runs` (maximal runs of touching segments) is exact, rewritten where a batch of
  segments lands or leaves: one select of the runs it touches, then only the changed rows.

Changes to sums are collected during the transaction (`Pending`) and written once at its end
(`flush`, called by the store after the work, and by the analytics reads before reading), so a
batch of commands in one transaction touches each counter row once. Every count follows the
rows actually found and changed, so a retried transaction counts exactly what it writes.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from ibis import _

from tams_store.analytics import BUCKET_NS
from tams_store.vast.listing import newest_per_id
from tams_store.vast.tables import IN_CHUNK, Row, TableHandle, Tables, all_of, take

SHARDS = 16
TOTAL_COLUMNS = (
    "flows",
    "segments",
    "duration_ns",
    "bytes",
    "unsized",
    "objects",
    "allocated",
    "sources",
)
# A flow's usage in its `flows` row (`seg_count` counts its segments).
FLOW_FIGURE_COLUMNS = ("seg_count", "duration_ns", "bytes", "unsized")

TotalKey = tuple[str, str, str]  # kind, key, subkey
Group = tuple[str, str]  # format, codec ('' for none)
Interval = tuple[int, int]

_KEY = ("counters", "pending")


@dataclass(frozen=True)
class Figures:
    """Usage of some segments: how many, how long, bytes of their objects, unsized ones."""

    segments: int = 0
    duration_ns: int = 0
    bytes: int = 0
    unsized: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.segments + other.segments,
            self.duration_ns + other.duration_ns,
            self.bytes + other.bytes,
            self.unsized + other.unsized,
        )

    def __neg__(self) -> Figures:
        return Figures(-self.segments, -self.duration_ns, -self.bytes, -self.unsized)

    @classmethod
    def of_flow(cls, row: Row) -> Figures:
        """A flow's figures from its `flows` row (NULL: none)."""
        return cls(*(int(row.get(c) or 0) for c in FLOW_FIGURE_COLUMNS))

    def flow_columns(self) -> dict[str, int]:
        return dict(zip(FLOW_FIGURE_COLUMNS, self.totals(), strict=True))

    def totals(self) -> tuple[int, int, int, int]:
        return (self.segments, self.duration_ns, self.bytes, self.unsized)


@dataclass(frozen=True)
class SegmentUse:
    """A segment as the counters see it: its bounds and what its object is."""

    start: int
    end: int
    size: int | None
    init_object_id: str | None


def figures_of(segments: Iterable[SegmentUse]) -> Figures:
    total = Figures()
    for s in segments:
        total = total + Figures(1, s.end - s.start, s.size or 0, int(s.size is None))
    return total


@dataclass
class Pending:
    """Changes to summed counters, written once at the end of the transaction."""

    shard: int
    totals: dict[TotalKey, Counter[str]] = field(default_factory=dict)
    buckets: Counter[tuple[str, int]] = field(default_factory=Counter)
    init_refs: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, key: TotalKey, **deltas: int) -> None:
        self.totals.setdefault(key, Counter()).update(deltas)


def pending(tables: Tables) -> Pending:
    found = tables.memo.get(_KEY)
    if found is None:
        found = tables.memo[_KEY] = Pending(shard=random.randrange(SHARDS))
    assert isinstance(found, Pending)
    return found


def group_of(row: Mapping[str, Any]) -> Group:
    return (str(row["format"]), str(row.get("codec") or ""))


# --- sources and flows ----------------------------------------------------------------------


def sources_changed(tables: Tables, added: Iterable[str], removed: Iterable[str]) -> None:
    """Source rows of these formats were inserted / deleted."""
    changes = pending(tables)
    for fmt in added:
        changes.add(("sources", fmt, ""), sources=1)
    for fmt in removed:
        changes.add(("sources", fmt, ""), sources=-1)


def flow_rows_changed(tables: Tables, added: Iterable[Group], removed: Iterable[Group]) -> None:
    """Flow rows of these (format, codec) groups were inserted / deleted."""
    changes = pending(tables)
    for fmt, codec in added:
        changes.add(("usage", fmt, codec), flows=1)
    for fmt, codec in removed:
        changes.add(("usage", fmt, codec), flows=-1)


def usage_changed(tables: Tables, group: Group, figures: Figures) -> None:
    """Segment figures joined (or, negative, left) a (format, codec) group."""
    pending(tables).add(
        ("usage", *group),
        segments=figures.segments,
        duration_ns=figures.duration_ns,
        bytes=figures.bytes,
        unsized=figures.unsized,
    )


# --- objects ----------------------------------------------------------------------------------


def copies_of(row: Mapping[str, Any]) -> list[str]:
    """The backends an `objects` row counts in: those holding a controlled copy
    (`controlled_storage_ids` in its document, once instances were added or removed), else
    its allocation backend; `''` (external) when it has none."""
    doc = row.get("doc")
    if isinstance(doc, str):
        doc = json.loads(doc or "{}")
    copies = doc.get("controlled_storage_ids") if isinstance(doc, dict) else None
    if copies is None:
        return [str(row.get("storage_id") or "")]
    return [str(c) for c in copies] or [""]


def _object_shares(row: Mapping[str, Any]) -> list[tuple[str, Counter[str]]]:
    """What one `objects` row adds to the figures of each backend it counts in."""
    registered = bool(row.get("registered"))
    size = row.get("size")
    share: Counter[str] = Counter(
        objects=int(registered),
        bytes=(size or 0) if registered else 0,
        unsized=int(registered and size is None),
        allocated=int(not registered),
    )
    return [(backend, share) for backend in copies_of(row)]


def objects_changed(
    tables: Tables, before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]
) -> None:
    """`objects` rows went from the `before` states (deleted or changed) to the `after`
    states (inserted or changed); each needs `storage_id`, `registered` and `size`, and its
    `doc` once it may have instances (a row without one counts where it was allocated)."""
    changes = pending(tables)
    for rows, sign in ((before, -1), (after, 1)):
        for row in rows:
            for backend, share in _object_shares(row):
                changes.add(("storage", backend, ""), **{k: sign * v for k, v in share.items()})


def fill_copies(tables: Tables) -> None:
    """The `Fill` of the step after which storage figures count an object in every backend
    holding a controlled copy: objects with instances added or removed move from where they
    were allocated to where their copies are."""
    rows = tables["objects"].rows(["storage_id", "registered", "size", "doc"], None, scan=True)
    moved = [r for r in rows if copies_of(r) != copies_of({**r, "doc": None})]
    objects_changed(tables, [{**r, "doc": None} for r in moved], moved)
    flush(tables)


# --- segments -------------------------------------------------------------------------------


def segments_changed(
    tables: Tables, flow_id: str, group: Group, segments: Sequence[SegmentUse], sign: int
) -> Figures:
    """Segments of a flow were inserted (`sign` 1) or deleted (-1): the group's usage, the
    hourly buckets and the init-object references follow. Returns the change to the flow's
    own figures (for its `flows` row, which the caller writes) and rewrites its runs."""
    if not segments:
        return Figures()
    figures = figures_of(segments)
    change = figures if sign > 0 else -figures
    usage_changed(tables, group, change)
    changes = pending(tables)
    for s in segments:
        changes.buckets[(flow_id, s.start // BUCKET_NS)] += sign
        if s.init_object_id is not None:
            changes.init_refs[(s.init_object_id, flow_id)] += sign
    bounds = [(s.start, s.end) for s in segments]
    if sign > 0:
        _runs_added(tables, flow_id, bounds)
    else:
        _runs_removed(tables, flow_id, bounds)
    return change


def flow_forgotten(tables: Tables, flow_id: str) -> None:
    """The flow is deleted: its runs, buckets and init references go (its figures went with
    its `flows` row; the caller took them out of the totals)."""
    changes = pending(tables)
    for bucket in [k for k in changes.buckets if k[0] == flow_id]:
        del changes.buckets[bucket]
    for ref in [k for k in changes.init_refs if k[1] == flow_id]:
        del changes.init_refs[ref]
    tables["flow_runs"].delete_where(_.flow_id == flow_id)
    tables["flow_buckets"].delete_where(_.flow_id == flow_id)
    # init_refs is keyed by init object: this reads its (few) rows, not the flow's segments.
    tables["init_refs"].delete_where(_.flow_id == flow_id)


def init_refs_moved(
    tables: Tables, per_flow: Mapping[str, int], old: str | None, new: str | None
) -> None:
    """Segments (counted per flow) of an object whose init object changed from `old` to
    `new` (never done by the services; kept exact all the same)."""
    changes = pending(tables)
    for flow_id, n in per_flow.items():
        if old is not None:
            changes.init_refs[(old, flow_id)] -= n
        if new is not None:
            changes.init_refs[(new, flow_id)] += n


# --- runs -----------------------------------------------------------------------------------


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Touching or overlapping intervals joined, sorted."""
    runs: list[Interval] = []
    for start, end in sorted(intervals):
        if runs and start <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], end))
        else:
            runs.append((start, end))
    return runs


def subtract(runs: Iterable[Interval], removed: Iterable[Interval]) -> list[Interval]:
    """What is left of `runs` without the (sorted, disjoint) `removed` intervals."""
    cuts = merge(removed)
    left: list[Interval] = []
    for start, end in sorted(runs):
        at = start
        for cut_start, cut_end in cuts:
            if cut_end <= at or cut_start >= end:
                continue
            if cut_start > at:
                left.append((at, cut_start))
            at = max(at, cut_end)
        if at < end:
            left.append((at, end))
    return left


def _runs_added(tables: Tables, flow_id: str, bounds: Sequence[Interval]) -> None:
    lo, hi = min(s for s, _e in bounds), max(e for _s, e in bounds)
    runs = tables["flow_runs"]
    found = runs.select(
        ["run_start", "run_end"],
        all_of(_.flow_id == flow_id, _.run_start <= hi, _.run_end >= lo),
        row_ids=True,
    )
    old = list(zip(found["run_start"].to_pylist(), found["run_end"].to_pylist(), strict=True))
    _rewrite(runs, flow_id, found, merge([*old, *bounds]))


def _runs_removed(tables: Tables, flow_id: str, bounds: Sequence[Interval]) -> None:
    lo, hi = min(s for s, _e in bounds), max(e for _s, e in bounds)
    runs = tables["flow_runs"]
    found = runs.select(
        ["run_start", "run_end"],
        all_of(_.flow_id == flow_id, _.run_start < hi, _.run_end > lo),
        row_ids=True,
    )
    old = list(zip(found["run_start"].to_pylist(), found["run_end"].to_pylist(), strict=True))
    _rewrite(runs, flow_id, found, subtract(old, bounds))


def _rewrite(runs: TableHandle, flow_id: str, found: pa.Table, wanted: list[Interval]) -> None:
    """Make the `found` run rows into `wanted`: a run keeping its start keeps its row (its
    end updated if it moved; the start is a sorting column), the rest are deleted/inserted."""
    starts = found["run_start"].to_pylist()
    ends = found["run_end"].to_pylist()
    rows_at: dict[int, list[int]] = {}
    for index, start in enumerate(starts):
        rows_at.setdefault(start, []).append(index)
    kept: set[int] = set()
    moved: list[tuple[int, int]] = []
    new: list[Row] = []
    for start, end in wanted:
        candidates = rows_at.get(start)
        if candidates:
            index = candidates.pop(0)
            kept.add(index)
            if ends[index] != end:
                moved.append((index, end))
        else:
            new.append({"flow_id": flow_id, "run_start": start, "run_end": end})
    runs.update_each(take(found, [i for i, _e in moved]), [{"run_end": e} for _i, e in moved])
    runs.delete(take(found, [i for i in range(found.num_rows) if i not in kept]))
    runs.insert(new)


# --- writing the sums -------------------------------------------------------------------------


def flush(tables: Tables) -> None:
    """Write the transaction's pending changes to summed counters (once, at its end)."""
    changes = tables.memo.pop(_KEY, None)
    if not isinstance(changes, Pending):
        return
    _flush_totals(tables["totals"], changes)
    _flush_pairs(tables["flow_buckets"], ("flow_id", "bucket"), changes.buckets)
    _flush_pairs(tables["init_refs"], ("init_object_id", "flow_id"), changes.init_refs)


def _flush_totals(totals: TableHandle, changes: Pending) -> None:
    deltas = {k: c for k, c in changes.totals.items() if any(c.values())}
    if not deltas:
        return
    found = totals.select(
        ["kind", "key", "subkey", *TOTAL_COLUMNS], _.shard == changes.shard, row_ids=True
    )
    rows = found.select(["kind", "key", "subkey", *TOTAL_COLUMNS]).to_pylist()
    first: dict[TotalKey, int] = {}
    for index, row in enumerate(rows):
        first.setdefault((row["kind"], row["key"], row["subkey"]), index)
    updated: list[int] = []
    values: list[dict[str, int]] = []
    new: list[Row] = []
    for key, delta in deltas.items():
        found_at = first.get(key)
        if found_at is None:
            new.append(
                {"kind": key[0], "key": key[1], "subkey": key[2], "shard": changes.shard}
                | {c: delta[c] for c in TOTAL_COLUMNS}
            )
        else:
            updated.append(found_at)
            values.append({c: int(rows[found_at][c] or 0) + delta[c] for c in TOTAL_COLUMNS})
    totals.update_each(take(found, updated), values)
    totals.insert(new)


def _flush_pairs(
    table: TableHandle, columns: tuple[str, str], deltas: Counter[tuple[Any, Any]]
) -> None:
    """Add `deltas` to the `segments` of the rows keyed by the two `columns`."""
    wanted = {k: n for k, n in deltas.items() if n}
    if not wanted:
        return
    first_col, second_col = columns
    seconds = sorted({k[1] for k in wanted})
    narrow = _[second_col].isin(seconds) if len(seconds) <= IN_CHUNK else None
    found = table.select_in(
        [*columns, "segments"], first_col, [k[0] for k in wanted], narrow, row_ids=True
    )
    rows = found.select([*columns, "segments"]).to_pylist()
    first: dict[tuple[Any, Any], int] = {}
    for index, row in enumerate(rows):
        first.setdefault((row[first_col], row[second_col]), index)
    pairs = [(k, first[k]) for k in wanted if k in first]
    table.update_each(
        take(found, [i for _k, i in pairs]),
        [{"segments": int(rows[i]["segments"] or 0) + wanted[k]} for k, i in pairs],
    )
    table.insert(
        [
            {first_col: k[0], second_col: k[1], "segments": n}
            for k, n in wanted.items()
            if k not in first
        ]
    )


# --- the migration that introduced the counters --------------------------------------------


def fill(tables: Tables) -> None:
    """Compute every counter from the rows already stored (the `Fill` of the migration step
    that added them): one read of each flow's segments, then the sums. No object had a
    known size, nor a recorded init object, before that step."""
    flows = tables["flows"]
    found = flows.select(
        ["id", "format", "codec", "metadata_updated_ns", "doc"], None, row_ids=True, scan=True
    )
    rows = found.select(["id", "format", "codec", "metadata_updated_ns", "doc"]).to_pylist()
    flow_rows_changed(tables, [group_of(r) for r in rows], [])
    figures: dict[str, Figures] = {}
    for row in newest_per_id(rows, "metadata_updated_ns"):
        flow_id = row["id"]
        segments = tables["segments"].select(["seg_start", "seg_end"], _.flow_id == flow_id)
        uses = [
            SegmentUse(start, end, None, None)
            for start, end in zip(
                segments["seg_start"].to_pylist(), segments["seg_end"].to_pylist(), strict=True
            )
        ]
        figures[flow_id] = figures_of(uses)
        usage_changed(tables, group_of(row), figures[flow_id])
        changes = pending(tables)
        for use in uses:
            changes.buckets[(flow_id, use.start // BUCKET_NS)] += 1
        tables["flow_runs"].insert(
            [
                {"flow_id": flow_id, "run_start": start, "run_end": end}
                for start, end in merge((u.start, u.end) for u in uses)
            ]
        )
    flows.update_each(found, [figures.get(r["id"], Figures()).flow_columns() for r in rows])
    sources = tables["sources"].select(["format"], None, scan=True)
    sources_changed(tables, sources["format"].to_pylist(), [])
    objects = tables["objects"].select(["storage_id", "registered", "size"], None, scan=True)
    objects_changed(tables, [], objects.to_pylist())
    flush(tables)
