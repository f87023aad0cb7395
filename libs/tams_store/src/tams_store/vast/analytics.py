"""Analytics reads over the counters `counters` keeps (never a scan of the segments).

Totals over all flows or a format sum the `totals` rows of their groups (a few rows per
shard); totals over a source add its flows' own figures (in their `flows` rows); coverage
reads a flow's runs in the window; a windowed segment count reads the window's whole hours
from `flow_buckets` and counts only the segments starting in its two partial edge hours.
Pages of flows are in id order, found with bounded selects (`ordered.first_rows`).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping

from ibis import _

from tams_schema.timerange import MAX_NS, MIN_NS
from tams_store import cursor
from tams_store.analytics import (
    BUCKET_NS,
    BackendUsage,
    CatalogCounts,
    CodecUsage,
    CoveragePage,
    FlowCoverage,
    FlowFilter,
    FlowUsage,
    UsageFigures,
    UsagePage,
)
from tams_store.vast import counters
from tams_store.vast.counters import TOTAL_COLUMNS, Figures, TotalKey
from tams_store.vast.listing import newest_per_id
from tams_store.vast.ordered import first_rows
from tams_store.vast.tables import Predicate, Row, Tables, all_of

_FLOW_COLUMNS = [
    "id",
    "source_id",
    "format",
    "codec",
    "label",
    "metadata_updated_ns",
    "seg_start",
    "seg_end",
    "max_seg_dur",
    *counters.FLOW_FIGURE_COLUMNS,
]


def _totals(tables: Tables, *kinds: str) -> dict[TotalKey, Counter[str]]:
    """The `totals` of these kinds, summed over shards and duplicate rows."""
    counters.flush(tables)  # a write transaction's own pending changes first
    rows = tables["totals"].rows(
        ["kind", "key", "subkey", *TOTAL_COLUMNS], _.kind.isin(sorted(kinds))
    )
    sums: dict[TotalKey, Counter[str]] = {}
    for row in rows:
        total = sums.setdefault((row["kind"], row["key"], row["subkey"]), Counter())
        total.update({c: int(row[c] or 0) for c in TOTAL_COLUMNS})
    return sums


def _usage(total: Mapping[str, int]) -> UsageFigures:
    return UsageFigures(
        flows=total["flows"],
        segments=total["segments"],
        duration_ns=total["duration_ns"],
        bytes=total["bytes"],
        segments_without_size=total["unsized"],
    )


def _flow_usage(figures: Figures, flows: int = 1) -> UsageFigures:
    return UsageFigures(
        flows, figures.segments, figures.duration_ns, figures.bytes, figures.unsized
    )


def catalog_counts(tables: Tables) -> CatalogCounts:
    totals = sorted(_totals(tables, "sources", "usage").items())
    sources = {
        key[1]: total["sources"]
        for key, total in totals
        if key[0] == "sources" and total["sources"] > 0
    }
    usage = [
        CodecUsage(key[1], key[2] or None, _usage(total))
        for key, total in totals
        if key[0] == "usage" and total["flows"] > 0
    ]
    return CatalogCounts(sources_by_format=sources, usage_by_codec=usage)


def storage_usage(tables: Tables) -> list[BackendUsage]:
    return [
        BackendUsage(
            storage_id=key[1] or None,
            objects=total["objects"],
            bytes=total["bytes"],
            objects_without_size=total["unsized"],
            allocated_unregistered=total["allocated"],
        )
        for key, total in sorted(_totals(tables, "storage").items())
        if total["objects"] > 0 or total["allocated"] > 0
    ]


def _flow_where(flows: FlowFilter) -> Predicate | None:
    return all_of(
        *[
            None if value is None else _[column] == value
            for column, value in (
                ("id", flows.flow_id),
                ("source_id", flows.source_id),
                ("format", flows.format),
                ("codec", flows.codec),
            )
        ]
    )


def _flow_page(
    tables: Tables, flows: FlowFilter, page: str | None, limit: int
) -> tuple[list[Row], str | None]:
    """One page of the selected flows (their rows), in id order."""
    after: str | None = None
    if page is not None:
        (key,) = cursor.decode(page, (str,))
        after = key
    chosen: list[Row] = []
    while len(chosen) <= limit:
        want = limit + 1 - len(chosen)
        where = all_of(_flow_where(flows), None if after is None else _.id > after)
        found = first_rows(tables["flows"], _FLOW_COLUMNS, where, "id", want).to_pylist()
        # Two rows of one id (racing inserts) count once: the newest.
        chosen += sorted(newest_per_id(found, "metadata_updated_ns"), key=lambda r: r["id"])
        if len(found) < want:
            break
        after = found[-1]["id"]
    if len(chosen) > limit:
        chosen = chosen[:limit]
        return chosen, cursor.encode([chosen[-1]["id"]])
    return chosen, None


def _usage_totals(tables: Tables, flows: FlowFilter) -> UsageFigures:
    if flows.flow_id is None and flows.source_id is None:
        total = UsageFigures()
        for key, group in _totals(tables, "usage").items():
            if flows.format is not None and key[1] != flows.format:
                continue
            if flows.codec is not None and key[2] != flows.codec:
                continue
            if group["flows"] > 0:
                total = total + _usage(group)
        return total
    # One flow, or the flows of one source: their own rows.
    rows = newest_per_id(
        tables["flows"].rows(_FLOW_COLUMNS, _flow_where(flows)), "metadata_updated_ns"
    )
    total = UsageFigures()
    for row in rows:
        total = total + _flow_usage(Figures.of_flow(row))
    return total


def flow_usage(tables: Tables, flows: FlowFilter, page: str | None, limit: int) -> UsagePage:
    rows, next_key = _flow_page(tables, flows, page, limit)
    items = [
        FlowUsage(
            flow_id=row["id"],
            source_id=row["source_id"],
            format=row["format"],
            codec=row["codec"],
            label=row["label"],
            usage=_flow_usage(Figures.of_flow(row)),
            extent=None if row["seg_start"] is None else (row["seg_start"], row["seg_end"]),
        )
        for row in rows
    ]
    return UsagePage(_usage_totals(tables, flows), items, limit, next_key)


# --- coverage ---------------------------------------------------------------------------------


def _starting_in(tables: Tables, flow_id: str, start: int, end: int) -> int:
    """Segments of the flow starting in [start, end) (at most an hour's worth)."""
    if start >= end:
        return 0
    where = (_.flow_id == flow_id) & (_.seg_start >= start) & (_.seg_start < end)
    return int(tables["segments"].select(["seg_start"], where).num_rows)


def _count_in(tables: Tables, row: Row, q_start: int, q_end: int) -> int:
    """Segments overlapping [q_start, q_end): those starting inside it (whole hours from
    `flow_buckets`, the partial edge hours counted), plus the one (at most: segments never
    overlap) starting before and reaching into it, found with the bounded overlap test."""
    flow_id = row["id"]
    first_whole = -(-q_start // BUCKET_NS)  # the first hour starting at or after q_start
    after_whole = q_end // BUCKET_NS  # hours before this one end at or before q_end
    if first_whole < after_whole:
        buckets = tables["flow_buckets"].rows(
            ["segments"],
            (_.flow_id == flow_id) & (_.bucket >= first_whole) & (_.bucket < after_whole),
        )
        count = (
            sum(int(b["segments"] or 0) for b in buckets)
            + _starting_in(tables, flow_id, q_start, first_whole * BUCKET_NS)
            + _starting_in(tables, flow_id, after_whole * BUCKET_NS, q_end)
        )
    else:
        count = _starting_in(tables, flow_id, q_start, q_end)
    if q_start > MIN_NS:
        lowest = max(MIN_NS, q_start - (row["max_seg_dur"] or 0))
        reaching_in = tables["segments"].select(
            ["seg_start"],
            all_of(
                _.flow_id == flow_id,
                _.seg_start < q_start,
                _.seg_start >= lowest,
                _.seg_end > q_start,
            ),
            limit_rows=1,
        )
        count += int(reaching_in.num_rows)
    return count


def _coverage(
    tables: Tables, row: Row, window: tuple[int, int] | None, gap_limit: int
) -> FlowCoverage:
    flow_id = row["id"]
    q_start, q_end = window or (MIN_NS, MAX_NS)
    # Runs never overlap: those in the window are what coverage and gaps cost.
    runs = sorted(
        (r["run_start"], r["run_end"])
        for r in tables["flow_runs"].rows(
            ["run_start", "run_end"],
            (_.flow_id == flow_id) & (_.run_start < q_end) & (_.run_end > q_start),
        )
    )
    if not runs:
        return FlowCoverage(flow_id, row["format"], 0, 0, None, 0, 0, [])
    clipped = [(max(s, q_start), min(e, q_end)) for s, e in runs]
    covered = sum(e - s for s, e in clipped)
    first, last = clipped[0][0], clipped[-1][1]
    gaps = [(before[1], after[0]) for before, after in itertools.pairwise(runs[: gap_limit + 1])]
    segments = Figures.of_flow(row).segments if window is None else _count_in(tables, row, *window)
    return FlowCoverage(
        flow_id=flow_id,
        format=row["format"],
        segments=segments,
        covered_ns=covered,
        extent=(first, last),
        gap_count=len(runs) - 1,
        gap_ns=(last - first) - covered,
        gaps=gaps if gap_limit > 0 else [],
    )


def flow_coverage(
    tables: Tables,
    flows: FlowFilter,
    window: tuple[int, int] | None,
    gap_limit: int,
    page: str | None,
    limit: int,
) -> CoveragePage:
    rows, next_key = _flow_page(tables, flows, page, limit)
    return CoveragePage([_coverage(tables, r, window, gap_limit) for r in rows], limit, next_key)
