"""Analytics counters for inserted segments, once per batch (see `analytics_schema`).

Called by `media.insert_segments`, the only place segments are inserted, in the same
transaction: the batch's figures go to its flow and its flow's (format, codec) group in one
statement each, and its segments join the flow's runs a run at a time.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence

from tams_store.analytics import BUCKET_NS
from tams_store.port import SegmentRecord


def _sizes(
    conn: sqlite3.Connection, object_ids: set[str], known: Mapping[str, int | None]
) -> dict[str, int | None]:
    sizes = {object_id: known[object_id] for object_id in object_ids if object_id in known}
    ids = sorted(object_ids - sizes.keys())
    for offset in range(0, len(ids), 500):
        chunk = ids[offset : offset + 500]
        rows = conn.execute(
            f"SELECT id, size FROM objects WHERE id IN ({','.join('?' * len(chunk))})", chunk
        )
        sizes.update((row[0], row[1]) for row in rows)
    return sizes


def segments_inserted(
    conn: sqlite3.Connection,
    flow_id: str,
    segments: Sequence[SegmentRecord],
    known_sizes: Mapping[str, int | None],
) -> None:
    """Add just-inserted segments to the counters. Objects whose size is not known yet count
    as unsized; the `analytics_object_sized` trigger moves them to bytes when it is set."""
    if not segments:
        return
    sizes = _sizes(conn, {s.object_id for s in segments}, known_sizes)
    known = [sizes.get(s.object_id) for s in segments]
    delta = (
        len(segments),
        sum(s.end - s.start for s in segments),
        sum(size or 0 for size in known),
        sum(size is None for size in known),
    )
    add = (
        "segments = segments + ?, duration_ns = duration_ns + ?, bytes = bytes + ?, "
        "unsized = unsized + ?"
    )
    conn.execute(f"UPDATE flow_stats SET {add} WHERE flow_id = ?", (*delta, flow_id))
    conn.execute(
        f"UPDATE usage_totals SET {add} WHERE (format, codec) = "
        "(SELECT format, coalesce(codec, '') FROM flows WHERE id = ?)",
        (*delta, flow_id),
    )
    buckets = Counter(s.start // BUCKET_NS for s in segments)
    conn.executemany(
        "INSERT INTO flow_buckets (flow_id, bucket, segments) VALUES (?, ?, ?) "
        "ON CONFLICT (flow_id, bucket) DO UPDATE SET segments = segments + excluded.segments",
        [(flow_id, bucket, n) for bucket, n in buckets.items()],
    )
    for start, end in _touching_runs(segments):
        _add_run(conn, flow_id, start, end)


def _touching_runs(segments: Sequence[SegmentRecord]) -> list[tuple[int, int]]:
    """The batch's own runs: its segments never overlap, so touching ones merge."""
    runs: list[tuple[int, int]] = []
    for start, end in sorted((s.start, s.end) for s in segments):
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def _add_run(conn: sqlite3.Connection, flow_id: str, start: int, end: int) -> None:
    """Add [start, end) (overlapping no run) to the flow's runs, joining the runs it touches."""
    # The run ending where this one starts and the run starting where it ends, in one
    # statement of two index lookups (an OR would scan the flow's runs). Runs never overlap,
    # so there is at most one of each.
    touching = conn.execute(
        "SELECT run_start, run_end FROM flow_runs WHERE flow_id = ? AND run_end = ? "
        "UNION ALL SELECT run_start, run_end FROM flow_runs WHERE flow_id = ? AND run_start = ?",
        (flow_id, start, flow_id, end),
    ).fetchall()
    before = next((run[0] for run in touching if run[1] == start), None)
    after = next((run[1] for run in touching if run[0] == end), None)
    if after is not None:
        conn.execute("DELETE FROM flow_runs WHERE flow_id = ? AND run_start = ?", (flow_id, end))
        end = after
    if before is not None:
        conn.execute(
            "UPDATE flow_runs SET run_end = ? WHERE flow_id = ? AND run_start = ?",
            (end, flow_id, before),
        )
    else:
        conn.execute(
            "INSERT INTO flow_runs (flow_id, run_start, run_end) VALUES (?, ?, ?)",
            (flow_id, start, end),
        )
