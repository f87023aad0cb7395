"""What the analytics read side of the store returns (the port's `ReadTx` analytics methods).

Every figure comes from counters the store keeps up to date in the same transaction as the
change they count (docs/analytics.md), so a figure never disagrees with a listing read at
the same moment and no request scans the segments table. Times are integer nanoseconds,
half-open `[start, end)` like the segment index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Segments are also counted per flow and hour of their start, so counting the segments in a
# time window reads one counter per whole hour inside it and range-counts only the two
# partial hours at its edges.
BUCKET_NS = 3600 * 1_000_000_000


@dataclass(frozen=True)
class UsageFigures:
    """Segments registered on a set of flows: how many, how long, how many bytes.

    `bytes` adds the size of each segment's object (an object used by two segments counts
    twice); `segments_without_size` counts segments whose object size is unknown
    (external objects), which therefore add nothing to `bytes`.
    """

    flows: int = 0
    segments: int = 0
    duration_ns: int = 0
    bytes: int = 0
    segments_without_size: int = 0

    def __add__(self, other: UsageFigures) -> UsageFigures:
        return UsageFigures(
            self.flows + other.flows,
            self.segments + other.segments,
            self.duration_ns + other.duration_ns,
            self.bytes + other.bytes,
            self.segments_without_size + other.segments_without_size,
        )


@dataclass(frozen=True)
class CodecUsage:
    """Flows of one format and codec (`codec` None: flows without a codec) and their usage."""

    format: str
    codec: str | None
    usage: UsageFigures


@dataclass(frozen=True)
class CatalogCounts:
    sources_by_format: dict[str, int]
    usage_by_codec: list[CodecUsage]


@dataclass(frozen=True)
class FlowFilter:
    """Which flows a usage or coverage query is about (all given conditions must hold)."""

    flow_id: str | None = None
    source_id: str | None = None
    format: str | None = None
    codec: str | None = None


@dataclass(frozen=True)
class FlowUsage:
    flow_id: str
    source_id: str
    format: str
    codec: str | None
    label: str | None
    usage: UsageFigures
    # Covering extent of the flow's segments, half-open; None when it has none.
    extent: tuple[int, int] | None


@dataclass(frozen=True)
class UsagePage:
    """Totals over every flow the filter selects, and one page of those flows (by id)."""

    totals: UsageFigures
    flows: list[FlowUsage]
    limit: int
    next_key: str | None = None


@dataclass(frozen=True)
class BackendUsage:
    """Objects whose bytes live in one storage backend (`storage_id` None: external objects,
    registered with their own `get_urls`)."""

    storage_id: str | None
    objects: int
    bytes: int
    objects_without_size: int
    # Allocated by POST /flows/{id}/storage but never registered as a segment.
    allocated_unregistered: int


@dataclass(frozen=True)
class FlowCoverage:
    """How a flow's segments cover a time window.

    `extent` is the covered span from the first to the last covered instant inside the
    window; gaps are the uncovered stretches inside `extent` (nothing before the first or
    after the last segment counts as a gap). `gaps` lists at most the requested number of
    them, in time order; `gap_count` and `gap_ns` count all of them.
    """

    flow_id: str
    format: str
    segments: int
    covered_ns: int
    extent: tuple[int, int] | None
    gap_count: int
    gap_ns: int
    gaps: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class CoveragePage:
    flows: list[FlowCoverage]
    limit: int
    next_key: str | None = None
