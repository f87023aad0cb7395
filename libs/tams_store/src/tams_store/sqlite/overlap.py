"""Which of a flow's segments overlap a time range, found by a bounded index range scan.

Segments are clustered on (flow_id, seg_start). A segment overlapping [q_start, q_end)
starts before q_end, and either at or after q_start, or before it and ending after it. The
segments of a flow never overlap each other, so at most one starts before q_start and
reaches into the range: the last one starting before q_start. The scan therefore runs from
that segment's start (one index seek to find it) to q_end, and costs the same at the start,
middle or end of a flow of any length, whatever its longest segment (a bound from the
longest segment, used before, made every overlap query on a flow with one day-long segment
read a day of segments, even after that segment was deleted).
"""

from __future__ import annotations

from typing import Any

# The start of the last segment starting before q_start, or q_start: a scalar subquery, so
# the statement stays one (SQLite evaluates it once).
_LOW = (
    "coalesce((SELECT seg_start FROM segments WHERE flow_id = ? AND seg_start < ? "
    "ORDER BY seg_start DESC LIMIT 1), ?)"
)


def overlap_clause(flow_id: str, q_start: int, q_end: int) -> tuple[str, list[Any]]:
    """The WHERE clause (after `flow_id = ?`) and its parameters selecting the flow's
    segments that overlap [q_start, q_end)."""
    return (
        f"seg_start < ? AND seg_start >= {_LOW} AND seg_end > ?",
        [q_end, flow_id, q_start, q_start, q_start],
    )
