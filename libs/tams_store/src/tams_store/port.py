"""The store port: what the services need from a metadata store, in TAMS terms.

Adapters (SQLite embedded default, VAST Database) implement `Store`. Work is handed to the
store as a synchronous function of a transaction object, and the adapter runs it off the
event loop: `await store.write(lambda tx: ...)` runs in one transaction on the writer
thread, `await store.read(lambda tx: ...)` on a reader. Domain logic therefore never awaits
in the middle of a transaction, and a whole batch of commands can share one transaction.

Documents are TAMS JSON objects (plain dicts, as the API shows them), not adapter rows.
Server-managed fields computed from other records (`collected_by`, `source_collection`) are
filled in by the adapter on read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from tams_schema.envelopes import Outcome
from tams_schema.timerange import TimeRange
from tams_store.analytics import (
    BackendUsage,
    CatalogCounts,
    CoveragePage,
    FlowFilter,
    UsagePage,
)

T = TypeVar("T")
Doc = dict[str, Any]

FlowSort = Literal["created", "metadata_updated", "label"]
SourceSort = Literal["created", "updated", "label"]


@dataclass(frozen=True)
class Page:
    """One page of a listing. `next_key` is the opaque cursor of the next page, if any."""

    items: list[Doc]
    limit: int
    next_key: str | None = None


@dataclass(frozen=True)
class TagFilter:
    """`tag.{name}=v1,v2` (any stored value, or array element, equal to any listed value)
    and `tag_exists.{name}=true|false`."""

    values: dict[str, list[str]] = field(default_factory=dict)
    exists: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceQuery:
    label: str | None = None
    format: str | None = None
    tags: TagFilter = field(default_factory=TagFilter)
    # None: no filter. []: only sources collected by nothing. Otherwise: collected by any.
    collected_by_ids: list[str] | None = None
    sort_by: SourceSort = "created"
    reverse_order: bool = False
    page: str | None = None
    limit: int = 100


@dataclass(frozen=True)
class FlowQuery:
    source_id: str | None = None
    format: str | None = None
    codec: str | None = None
    label: str | None = None
    profile_id: str | None = None
    status: str | None = None
    frame_width: int | None = None
    frame_height: int | None = None
    init_segments: bool | None = None
    tags: TagFilter = field(default_factory=TagFilter)
    collected_by_ids: list[str] | None = None
    # None: no filter. Empty range `()`: only flows without segments. Otherwise: flows whose
    # covering timerange overlaps it.
    timerange: TimeRange | None = None
    sort_by: FlowSort = "created"
    reverse_order: bool = False
    page: str | None = None
    limit: int = 100


@dataclass(frozen=True)
class ObjectAllocation:
    """An object id handed to a flow for upload; its first registration must be on it."""

    object_id: str
    flow_id: str
    storage_id: str
    content_type: str
    allocated_ns: int


@dataclass(frozen=True)
class ObjectRecord:
    """What the store knows of a media object. `doc` holds properties frozen at the first
    registration (`timerange` on the media timeline, `key_frame_count`, `init_object_id`) and
    uncontrolled instances (`get_urls`)."""

    object_id: str
    allocated_flow_id: str | None
    storage_id: str | None
    content_type: str | None
    registered: bool
    first_referenced_by_flow: str | None
    doc: Doc
    # Bytes of the controlled copy, read from S3 (HEAD) at its first registration; None when
    # unknown (external objects, objects registered before sizes were recorded).
    size: int | None = None

    @property
    def controlled_storage_ids(self) -> list[str]:
        """Backends holding a controlled copy of the bytes, the allocation backend first
        (`doc["controlled_storage_ids"]` once instances were added or removed)."""
        copies = self.doc.get("controlled_storage_ids")
        if copies is not None:
            return list(copies)
        return [self.storage_id] if self.storage_id else []


@dataclass(frozen=True)
class SegmentRecord:
    """A registered segment: half-open integer bounds, the canonical timerange as registered,
    and the rest of the registration (`ts_offset`, `last_duration`, sample fields...)."""

    start: int
    end: int
    object_id: str
    timerange: str
    doc: Doc
    created_ns: int


@dataclass(frozen=True)
class SegmentPage:
    items: list[SegmentRecord]
    limit: int
    next_key: str | None = None


class InvalidPageKey(ValueError):
    """A `page` cursor that this store did not issue."""


class ReadTx(Protocol):
    """Reads inside one consistent snapshot."""

    def get_service_info(self) -> Doc:
        """`{"name"?: str, "description"?: str}` as set through POST /service."""
        ...

    def get_source(self, source_id: str) -> Doc | None:
        """The Source with `collected_by` and `source_collection` filled in."""
        ...

    def list_sources(self, query: SourceQuery) -> Page: ...

    def get_flow(self, flow_id: str) -> Doc | None:
        """The Flow as stored (with `collected_by`, `segments_updated`), without `timerange`."""
        ...

    def flow_timerange(self, flow_id: str, within: TimeRange | None = None) -> TimeRange:
        """Covering range of the flow's segments (only those overlapping `within` if given);
        `TimeRange.never()` when there are none."""
        ...

    def list_flows(self, query: FlowQuery) -> Page: ...

    def get_profile(self, profile_id: str) -> Doc | None: ...

    def get_objects(self, object_ids: list[str]) -> dict[str, ObjectRecord]: ...

    def object_flows(
        self, object_id: str, flow_tags: TagFilter, page: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Ids of the flows with a segment using this object (filtered by the flows' tags),
        in id order, and the key of the next page."""
        ...

    def list_segments(
        self,
        flow_id: str,
        *,
        timerange: TimeRange | None,
        object_id: str | None,
        reverse: bool,
        page: str | None,
        limit: int,
    ) -> SegmentPage:
        """Segments overlapping `timerange` (all if None) in time order; an unknown flow has
        none."""
        ...

    def list_profiles(
        self,
        *,
        format: str | None,
        codec: str | None,
        label: str | None,
        page: str | None,
        limit: int,
    ) -> Page: ...

    # --- analytics (counters kept at write time; tams_store.analytics) -----------------

    def catalog_counts(self) -> CatalogCounts:
        """Sources by format; flows and their segment usage by format and codec."""
        ...

    def flow_usage(self, flows: FlowFilter, page: str | None, limit: int) -> UsagePage:
        """Usage totals over every selected flow and one page of them, in id order."""
        ...

    def storage_usage(self) -> list[BackendUsage]:
        """Registered objects and their bytes, and allocated objects, per storage backend."""
        ...

    def flow_coverage(
        self,
        flows: FlowFilter,
        window: tuple[int, int] | None,
        gap_limit: int,
        page: str | None,
        limit: int,
    ) -> CoveragePage:
        """Coverage and gaps of one page of the selected flows (id order) inside the
        half-open `window` (everything if None). Costs the number of gaps in the window,
        never the number of segments in it."""
        ...


class WriteTx(ReadTx, Protocol):
    """Reads and writes inside one transaction; nothing is visible to others until commit."""

    def recorded_outcome(self, command_id: str) -> Outcome | None:
        """The outcome recorded for an already applied command, if any."""
        ...

    def record_outcome(self, command_id: str, outcome: Outcome) -> None: ...

    def set_service_info(self, info: Doc) -> None: ...

    def put_source(self, source: Doc) -> None:
        """Insert or replace a Source document (computed fields are ignored)."""
        ...

    def delete_source(self, source_id: str) -> None: ...

    def count_flows_of_source(self, source_id: str) -> int: ...

    def put_flow(self, flow: Doc) -> None:
        """Insert or replace a Flow document, its tags and its `flow_collection` membership.

        Segment-derived state (`segments_updated`, the covering timerange) is owned by the
        segments service and is kept as it is.
        """
        ...

    def delete_flow(self, flow_id: str) -> None:
        """Remove the flow, its tags, collection links and segments (object bytes stay until
        object garbage collection)."""
        ...

    def put_profile(self, profile: Doc) -> None: ...

    def existing_object_ids(self, object_ids: list[str]) -> set[str]:
        """Which of these object ids the store already knows (allocated or registered)."""
        ...

    def allocate_objects(self, allocations: list[ObjectAllocation]) -> None:
        """Record objects handed out by POST /flows/{id}/storage, not yet registered."""
        ...

    def overlapping_segments(self, flow_id: str, start: int, end: int) -> list[tuple[int, int]]:
        """Bounds of (at most one) segment overlapping the half-open range [start, end)."""
        ...

    def add_segments(
        self,
        flow_id: str,
        segments: list[SegmentRecord],
        objects: list[ObjectRecord],
        segments_updated: str,
    ) -> None:
        """Insert segments, register their new objects, and extend the flow's extent."""
        ...


class Store(Protocol):
    """A metadata store adapter."""

    async def open(self) -> None:
        """Connect and apply pending (additive, versioned) schema migrations."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True if the store answers a trivial query now."""
        ...

    async def read(self, work: Callable[[ReadTx], T]) -> T: ...

    async def write(self, work: Callable[[WriteTx], T]) -> T:
        """Run `work` in one transaction, committed if it returns, rolled back if it raises."""
        ...
