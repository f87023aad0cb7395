"""Analytics reads over the counters of `analytics_schema` (never a scan of the segments).

Totals over all flows or a format read a few `usage_totals` rows; totals over a source add
its flows' `flow_stats` rows; coverage walks a flow's runs in the window; a windowed segment
count reads the window's whole hours from `flow_buckets` and range-counts the two edge hours.
"""

from __future__ import annotations

import itertools
import sqlite3
from typing import Any

from tams_schema.timerange import MAX_NS, MIN_NS
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
from tams_store.sqlite import cursor

_FIGURES = "segments, duration_ns, bytes, unsized"


def _figures(row: sqlite3.Row, flows: int) -> UsageFigures:
    return UsageFigures(
        flows=flows,
        segments=int(row["segments"] or 0),
        duration_ns=int(row["duration_ns"] or 0),
        bytes=int(row["bytes"] or 0),
        segments_without_size=int(row["unsized"] or 0),
    )


def catalog_counts(conn: sqlite3.Connection) -> CatalogCounts:
    sources = {
        row["format"]: int(row["sources"])
        for row in conn.execute(
            "SELECT format, sources FROM source_totals WHERE sources > 0 ORDER BY format"
        )
    }
    usage = [
        CodecUsage(row["format"], row["codec"] or None, _figures(row, int(row["flows"])))
        for row in conn.execute(
            f"SELECT format, codec, flows, {_FIGURES} FROM usage_totals WHERE flows > 0 "
            "ORDER BY format, codec"
        )
    ]
    return CatalogCounts(sources_by_format=sources, usage_by_codec=usage)


def _flow_where(flows: FlowFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("id", flows.flow_id),
        ("source_id", flows.source_id),
        ("format", flows.format),
        ("codec", flows.codec),
    ):
        if value is not None:
            where.append(f"f.{column} = ?")
            params.append(value)
    return where, params


def _flow_rows(
    conn: sqlite3.Connection, flows: FlowFilter, page: str | None, limit: int
) -> tuple[list[sqlite3.Row], str | None]:
    """One page of the selected flows with their figures and extent, in id order."""
    where, params = _flow_where(flows)
    if page is not None:
        (after,) = cursor.decode(page, (str,))
        where.append("f.id > ?")
        params.append(after)
    sql = (
        "SELECT f.id, f.source_id, f.format, f.codec, f.label, "
        f"st.{_FIGURES.replace(', ', ', st.')}, "
        "(SELECT min(run_start) FROM flow_runs WHERE flow_id = f.id) AS first_start, "
        "(SELECT max(run_end) FROM flow_runs WHERE flow_id = f.id) AS last_end "
        "FROM flows f JOIN flow_stats st ON st.flow_id = f.id"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY f.id LIMIT ?"
    )
    rows = conn.execute(sql, [*params, limit + 1]).fetchall()
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, cursor.encode([rows[-1]["id"]])
    return rows, None


def _usage_totals(conn: sqlite3.Connection, flows: FlowFilter) -> UsageFigures:
    if flows.flow_id is None and flows.source_id is None:
        # Whole groups: a few rows of usage_totals, whatever the store holds.
        where = ["flows > 0"]
        params: list[Any] = []
        if flows.format is not None:
            where.append("format = ?")
            params.append(flows.format)
        if flows.codec is not None:
            where.append("codec = ?")
            params.append(flows.codec)
        row = conn.execute(
            f"SELECT sum(flows) AS flows, sum(segments) AS segments, "
            "sum(duration_ns) AS duration_ns, sum(bytes) AS bytes, sum(unsized) AS unsized "
            f"FROM usage_totals WHERE {' AND '.join(where)}",
            params,
        ).fetchone()
        return _figures(row, int(row["flows"] or 0))
    # One flow, or the flows of one source (an indexed lookup).
    where, params = _flow_where(flows)
    row = conn.execute(
        "SELECT count(*) AS flows, sum(st.segments) AS segments, "
        "sum(st.duration_ns) AS duration_ns, sum(st.bytes) AS bytes, "
        "sum(st.unsized) AS unsized FROM flows f JOIN flow_stats st ON st.flow_id = f.id "
        f"WHERE {' AND '.join(where)}",
        params,
    ).fetchone()
    return _figures(row, int(row["flows"] or 0))


def flow_usage(
    conn: sqlite3.Connection, flows: FlowFilter, page: str | None, limit: int
) -> UsagePage:
    rows, next_key = _flow_rows(conn, flows, page, limit)
    items = [
        FlowUsage(
            flow_id=row["id"],
            source_id=row["source_id"],
            format=row["format"],
            codec=row["codec"],
            label=row["label"],
            usage=_figures(row, 1),
            extent=None
            if row["first_start"] is None
            else (int(row["first_start"]), int(row["last_end"])),
        )
        for row in rows
    ]
    return UsagePage(_usage_totals(conn, flows), items, limit, next_key)


def storage_usage(conn: sqlite3.Connection) -> list[BackendUsage]:
    return [
        BackendUsage(
            storage_id=row["storage_id"] or None,
            objects=int(row["registered"]),
            bytes=int(row["bytes"]),
            objects_without_size=int(row["unsized"]),
            allocated_unregistered=int(row["allocated"]),
        )
        for row in conn.execute(
            "SELECT storage_id, registered, bytes, unsized, allocated FROM storage_totals "
            "WHERE registered > 0 OR allocated > 0 ORDER BY storage_id"
        )
    ]


def _count_in(conn: sqlite3.Connection, flow_id: str, q_start: int, q_end: int) -> int:
    """Segments overlapping [q_start, q_end): those starting inside it, plus the one (at
    most: segments never overlap) that starts before and reaches into it. Whole hours inside
    the window are read from `flow_buckets`; only its partial edge hours count segments."""

    def starting(start: int, end: int) -> int:
        if start >= end:
            return 0
        return int(
            conn.execute(
                "SELECT count(*) FROM segments WHERE flow_id = ? AND seg_start >= ? "
                "AND seg_start < ?",
                (flow_id, start, end),
            ).fetchone()[0]
        )

    first_whole = -(-q_start // BUCKET_NS)  # the first hour starting at or after q_start
    after_whole = q_end // BUCKET_NS  # hours before this one end at or before q_end
    if first_whole < after_whole:
        whole = conn.execute(
            "SELECT coalesce(sum(segments), 0) FROM flow_buckets WHERE flow_id = ? "
            "AND bucket >= ? AND bucket < ?",
            (flow_id, first_whole, after_whole),
        ).fetchone()[0]
        count = (
            int(whole)
            + starting(q_start, first_whole * BUCKET_NS)
            + starting(after_whole * BUCKET_NS, q_end)
        )
    else:
        count = starting(q_start, q_end)
    reaching_in = conn.execute(
        "SELECT seg_end > ? FROM segments WHERE flow_id = ? AND seg_start < ? "
        "ORDER BY seg_start DESC LIMIT 1",
        (q_start, flow_id, q_start),
    ).fetchone()
    return count + (1 if reaching_in and reaching_in[0] else 0)


def _coverage(
    conn: sqlite3.Connection,
    row: sqlite3.Row,
    window: tuple[int, int] | None,
    gap_limit: int,
) -> FlowCoverage:
    flow_id = row["id"]
    q_start, q_end = window or (MIN_NS, MAX_NS)
    # Runs never overlap: the first one in the window is the one holding q_start, if any,
    # so the scan starts there and stops at q_end (an index range on both sides).
    runs_where = (
        "flow_id = ? AND run_start < ? AND run_end > ? AND run_start >= coalesce("
        "(SELECT max(run_start) FROM flow_runs WHERE flow_id = ? AND run_start <= ?), ?)"
    )
    runs_params = [flow_id, q_end, q_start, flow_id, q_start, q_start]
    summary = conn.execute(
        "SELECT count(*) AS runs, sum(min(run_end, ?) - max(run_start, ?)) AS covered, "
        "min(max(run_start, ?)) AS first, max(min(run_end, ?)) AS last "
        f"FROM flow_runs WHERE {runs_where}",
        [q_end, q_start, q_start, q_end, *runs_params],
    ).fetchone()
    runs = int(summary["runs"])
    if runs == 0:
        return FlowCoverage(flow_id, row["format"], 0, 0, None, 0, 0, [])
    covered = int(summary["covered"])
    first, last = int(summary["first"]), int(summary["last"])
    gaps: list[tuple[int, int]] = []
    if gap_limit > 0 and runs > 1:
        listed = conn.execute(
            f"SELECT run_start, run_end FROM flow_runs WHERE {runs_where} "
            "ORDER BY run_start LIMIT ?",
            [*runs_params, gap_limit + 1],
        ).fetchall()
        gaps = [
            (int(before["run_end"]), int(after["run_start"]))
            for before, after in itertools.pairwise(listed)
        ]
    segments = int(row["segments"]) if window is None else _count_in(conn, flow_id, *window)
    return FlowCoverage(
        flow_id=flow_id,
        format=row["format"],
        segments=segments,
        covered_ns=covered,
        extent=(first, last),
        gap_count=runs - 1,
        gap_ns=(last - first) - covered,
        gaps=gaps,
    )


def flow_coverage(
    conn: sqlite3.Connection,
    flows: FlowFilter,
    window: tuple[int, int] | None,
    gap_limit: int,
    page: str | None,
    limit: int,
) -> CoveragePage:
    rows, next_key = _flow_rows(conn, flows, page, limit)
    return CoveragePage([_coverage(conn, row, window, gap_limit) for row in rows], limit, next_key)
