"""The store port: what the services need from a metadata store, in TAMS terms.

Adapters (SQLite embedded default, VAST Database) implement `Store`. Work is handed to the
store as a synchronous function of a transaction object: `await store.write(lambda tx: ...)`
runs it in one transaction on the writer thread, `await store.read(lambda tx: ...)` on a
reader. (The SQLite adapter runs a write that can start at once on the event loop itself:
it is local and short.) Domain logic therefore never awaits in the middle of a
transaction, and a whole batch of commands can share one transaction.

Documents are TAMS JSON objects (plain dicts, as the API shows them), not adapter rows.
Server-managed fields computed from other records (`collected_by`, `source_collection`) are
filled in by the adapter on read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from tams_schema.auth import Principal
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
WebhookStatus = Literal["created", "started", "disabled", "error"]
DeletionRequestSort = Literal["created", "expiry"]
# `release`: forget an object at the end of its release grace, unless referenced again
# (storage_id ""); `delete`, `sweep`: delete its bytes on a backend; `copy`: copy them there.
MediaJobKind = Literal["release", "delete", "copy", "sweep"]

# Segments one tag-filtered segment page may examine (ReadTx.list_segments).
SEGMENT_TAG_SCAN_LIMIT = 5000


@dataclass(frozen=True)
class Page:
    """One page of a listing. `next_key` is the opaque cursor of the next page, if any."""

    items: list[Doc]
    limit: int
    next_key: str | None = None


@dataclass(frozen=True)
class AccessFilter:
    """Fine-grained authorisation of a listing (AppNote 0016): keep a resource whose tag
    `name` lists one of `classes`, or, with `unclassified`, one whose tag has no value (absent,
    or an empty list). Applied in the query, so pages are filtered, not thinned afterwards.
    An empty `collected_by_ids` filter (FlowQuery, SourceQuery) is relative to it too: what
    no collection the caller may read collects."""

    classes: tuple[str, ...] = ()
    unclassified: bool = False
    name: str = "auth_classes"

    @property
    def impossible(self) -> bool:
        return not self.classes and not self.unclassified


@dataclass(frozen=True)
class TagFilter:
    """`tag.{name}=v1,v2` (any stored value, or array element, equal to any listed value)
    and `tag_exists.{name}=true|false`, ANDed with the caller's permissions (`access`, None:
    no restriction)."""

    values: dict[str, list[str]] = field(default_factory=dict)
    exists: dict[str, bool] = field(default_factory=dict)
    access: AccessFilter | None = None

    @property
    def empty(self) -> bool:
        return not self.values and not self.exists and self.access is None


@dataclass(frozen=True)
class SourceQuery:
    label: str | None = None
    format: str | None = None
    tags: TagFilter = field(default_factory=TagFilter)
    # None: no filter. []: only sources collected by nothing, or, with `tags.access`, by no
    # source the caller may read (the access filter applied to the collector sources' own
    # tags, as `collected_by` shows them: a collection the caller may not read collects
    # nothing for them). Otherwise: collected by any.
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
    # Video flows only, as the spec says (image flows have a frame size too).
    frame_width: int | None = None
    frame_height: int | None = None
    init_segments: bool | None = None
    tags: TagFilter = field(default_factory=TagFilter)
    # None: no filter. []: only flows collected by no flow, or, with `tags.access`, by no flow
    # the caller may read (the access filter applied to the collector flows' own tags, as
    # `collected_by` shows them). Otherwise: collected by any.
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
    """What the store knows of an object. `doc` holds properties frozen at the first
    registration (`timerange` on the media timeline, `key_frame_count`, `init_object_id`, or
    `role: "init"` for an init object, which has no timerange), uncontrolled instances
    (`get_urls`) and, once instances were added or removed, `controlled_storage_ids`."""

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
    # When POST /flows/{id}/storage allocated it (its put_url was handed out); 0 for objects
    # that were never allocated here (external objects).
    allocated_ns: int = 0

    @property
    def controlled_storage_ids(self) -> list[str]:
        """Backends holding a controlled copy of the bytes, the allocation backend first
        (`doc["controlled_storage_ids"]` once instances were added or removed)."""
        copies = self.doc.get("controlled_storage_ids")
        if copies is not None:
            return list(copies)
        return [self.storage_id] if self.storage_id else []

    @property
    def is_init(self) -> bool:
        """Registered as an init object (ADR 0045): never usable as a media object."""
        return self.doc.get("role") == "init"

    @property
    def init_object_id(self) -> str | None:
        value = self.doc.get("init_object_id")
        return str(value) if value is not None else None


@dataclass(frozen=True)
class SegmentRecord:
    """A registered segment: half-open integer bounds, the canonical timerange as registered,
    and the rest of the registration (`ts_offset`, `last_duration`, sample fields...).
    `tags` are the segment's own tags (the segment tags extension, docs/ext-segment-tags.md):
    set after registration, scoped to this flow's segment, never to its object."""

    start: int
    end: int
    object_id: str
    timerange: str
    doc: Doc
    created_ns: int
    tags: dict[str, str | list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentPage:
    items: list[SegmentRecord]
    limit: int
    next_key: str | None = None


@dataclass(frozen=True)
class WebhookRecord:
    """A webhook registration.

    `doc` is the registration as the API shows it, without `id`, `status` and `error`: `url`,
    `events`, `api_key_name`, the filters, the URL options and `tags`. `api_key_value` is kept
    apart, exactly as the service gave it (sealed when a secret key is configured), and is never
    part of `view()`. `generation` counts replacements (PUTs), so a delivery worker's status
    change can be made conditional on the registration it was working for. `owner` is who
    registered or last replaced it (None: authentication was off): deliveries are limited to
    what the owner may read. It is not part of `view()` either (the spec has no such field).
    `signing_secret` (docs/webhooks.md, signed deliveries) is kept like `api_key_value`,
    sealed, and never shown.
    """

    id: str
    doc: Doc
    status: WebhookStatus
    error: Doc | None = None
    api_key_value: str | None = None
    generation: int = 1
    owner: Principal | None = None
    signing_secret: str | None = None

    @property
    def url(self) -> str:
        return str(self.doc["url"])

    def view(self) -> Doc:
        """The webhook as GET shows it (`schemas/webhook-get.json`), never the key value."""
        body: Doc = {"id": self.id, **self.doc, "status": self.status}
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass(frozen=True)
class WebhookQuery:
    """`GET /service/webhooks`: sorted by `url` (then id), A→Z unless `reverse_order`."""

    tags: TagFilter = field(default_factory=TagFilter)
    reverse_order: bool = False
    page: str | None = None
    limit: int = 100


@dataclass(frozen=True)
class QueuedEvent:
    """A TAMS event entering the delivery queues: its id (deduplication), the payload as
    published (`{event_timestamp, event_type, event}`) and, for each webhook it goes to, its
    position in that webhook's queue. Positions are assigned by the caller, consecutively per
    webhook, so a queue is read in order by position."""

    event_id: str
    payload: Doc
    positions: dict[str, int]


@dataclass(frozen=True)
class Delivery:
    """One queued event for one webhook: `seq` is its position in the webhook's queue."""

    webhook_id: str
    seq: int
    event_id: str
    payload: Doc


@dataclass(frozen=True)
class DeletionRequestRecord:
    """A flow delete request (`DELETE /flows/{id}` or `.../segments` answered 202).

    `doc` is the TAMS deletion-request document (`schemas/deletion-request.json`: `id`,
    `flow_id`, `timerange_to_delete`, `timerange_remaining`, `delete_flow`, `status`,
    `created`, `updated`, `expiry`, ...). The rest is the server's own bookkeeping:
    `object_id` narrows the request to segments of that object; `step` numbers the next step
    command the request expects (a step command carrying another number is stale and does
    nothing); `resumes` counts restarts since the last progress.
    """

    doc: Doc
    object_id: str | None = None
    step: int = 0
    resumes: int = 0

    @property
    def id(self) -> str:
        return str(self.doc["id"])

    @property
    def flow_id(self) -> str:
        return str(self.doc["flow_id"])

    @property
    def status(self) -> str:
        return str(self.doc["status"])

    @property
    def finished(self) -> bool:
        return self.status in ("done", "error")


@dataclass(frozen=True)
class MediaJob:
    """Work on an object's bytes in one storage backend, done by a segments-service worker
    outside any transaction: `delete` the bytes there, `copy` them there from another
    instance, or `sweep`: delete them again once no put_url handed out for the object can
    upload any more (queued with `lease_until_ns` then), so a late upload leaves nothing. A
    worker claims a job under a lease (`lease_owner` until `lease_until_ns`), so several
    service instances never work on one job at once; an expired lease is a retry."""

    kind: MediaJobKind
    object_id: str
    storage_id: str
    created_ns: int
    attempts: int = 0
    lease_owner: str | None = None
    lease_until_ns: int = 0


@dataclass(frozen=True)
class DeletedFlowRecord:
    """A soft-deleted flow (docs/ext-soft-delete.md): hidden from every TAMS read, its
    segments and objects kept (so never garbage collected) until it is restored or purged.

    `flow` is the flow document as stored (no computed fields); `timerange` its covering
    range when it was hidden; `source` the document of its source when the source was
    hidden with it (it was the source's last flow). `purge_request_id` is set once a purge
    has started: from then on the flow can no longer be restored.
    """

    flow: Doc
    deleted: str
    deleted_ns: int
    purge_after: str
    purge_after_ns: int
    deleted_by: str | None = None
    timerange: str = "()"
    source: Doc | None = None
    purge_request_id: str | None = None

    @property
    def flow_id(self) -> str:
        return str(self.flow["id"])

    def view(self) -> Doc:
        """`GET /deleted-flows/{id}`: `{flow, deleted, deleted_by, purge_after}` (+ the
        purge's deletion request once one runs)."""
        body: Doc = {
            "flow": {**self.flow, "timerange": self.timerange},
            "deleted": self.deleted,
            "purge_after": self.purge_after,
        }
        if self.deleted_by is not None:
            body["deleted_by"] = self.deleted_by
        if self.source is not None:
            body["source_deleted_with_flow"] = True
        if self.purge_request_id is not None:
            body["purge_request_id"] = self.purge_request_id
        return body


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

    def source_routing(self, source_id: str) -> Doc | None:
        """What the events of the source's flows are routed by: its `tags` and `collected_by`
        as `get_source` has them (absent keys stay absent), or None; cheaper than it."""
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

    def unreferenced_objects(self, object_ids: list[str]) -> list[str]:
        """Which of these registered objects no segment uses (soft-deleted flows' included)
        and no remaining object names as its `init_object_id`: they may be removed."""
        ...

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
        tags: TagFilter | None = None,
        scan_limit: int = SEGMENT_TAG_SCAN_LIMIT,
    ) -> SegmentPage:
        """Segments overlapping `timerange` (all if None) in time order; an unknown flow has
        none.

        With `tags` (its `values` and `exists`; `access` is not used: segments are reached
        through their flow) only segments whose tags match are listed. Such a page examines
        at most `scan_limit` segments: when they hold fewer than `limit` matches the page is
        short and `next_key` continues after the last segment examined, so each page costs a
        bounded amount of work however rare the matches are."""
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

    # --- webhooks: registrations -----------------------------------------------------------

    def get_webhook(self, webhook_id: str) -> WebhookRecord | None: ...

    def list_webhooks(self, query: WebhookQuery) -> Page:
        """One page of webhooks as the API shows them (`WebhookRecord.view()`)."""
        ...

    def all_webhooks(self) -> list[WebhookRecord]:
        """Every registration, with its key value (the webhooks service's working set)."""
        ...

    # --- webhooks: delivery queues (the outbox) -------------------------------------------

    def pending_deliveries(
        self, webhook_id: str, from_seq: int, until_seq: int, limit: int
    ) -> list[Delivery]:
        """The first queued deliveries of one webhook at positions in [from_seq, until_seq),
        in `seq` order: `limit` of them, or fewer (VAST counts a position written twice
        against the limit, so a short read does not mean the range is done; continue after
        the last one). Positions are handed out consecutively, but deliveries finished out
        of order leave gaps; a read passes them at no cost, so a queue of a few deliveries
        scattered over a long range takes one read."""
        ...

    def delivery_queues(self, webhook_id: str | None = None) -> dict[str, tuple[int, int]]:
        """For every webhook with queued deliveries (or just this one): the first and last
        queued `seq`."""

    # --- deletion ----------------------------------------------------------------------

    def segments_within(
        self, flow_id: str, timerange: TimeRange, *, object_id: str | None, limit: int
    ) -> list[SegmentRecord]:
        """The first `limit` segments (in time order) lying wholly inside `timerange`, only
        those of `object_id` if given: what a segment DELETE removes."""
        ...

    def get_deletion_request(self, request_id: str) -> DeletionRequestRecord | None: ...

    def list_deletion_requests(
        self, *, sort_by: DeletionRequestSort, reverse_order: bool, page: str | None, limit: int
    ) -> Page:
        """Deletion-request documents, newest `created` (or `expiry`) first, then by id."""
        ...

    def unfinished_deletion_requests(
        self, updated_before_ns: int, limit: int
    ) -> list[DeletionRequestRecord]:
        """Requests still `created` or `started` whose `updated` is older than this."""
        ...

    # --- soft-deleted flows (docs/ext-soft-delete.md) ----------------------------------

    def get_deleted_flow(self, flow_id: str) -> DeletedFlowRecord | None: ...

    def list_deleted_flows(
        self, page: str | None, limit: int
    ) -> tuple[list[DeletedFlowRecord], str | None]:
        """Soft-deleted flows, most recently deleted first (then by id), keyset paged."""
        ...

    def due_deleted_flows(self, now_ns: int, limit: int) -> list[DeletedFlowRecord]:
        """Soft-deleted flows whose `purge_after` has passed and whose purge has not started."""
        ...

    # --- object bytes ------------------------------------------------------------------

    def media_jobs_of(self, object_ids: list[str]) -> list[MediaJob]:
        """Pending byte deletions and copies of these objects."""

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

    def forget_outcomes(self, recorded_before_ns: int, limit: int) -> int:
        """Forget up to about `limit` outcomes recorded before `recorded_before_ns`, oldest
        first (tams_runtime.outcomes); returns how many. A command whose outcome is forgotten
        would be applied again if read again."""
        ...

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
        """Which of these object ids are in use: allocated, registered, or with bytes still
        queued for deletion (reusing such an id could upload bytes a worker then deletes)."""
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

    # --- webhooks: registrations -----------------------------------------------------------

    def put_webhook(self, record: WebhookRecord) -> None:
        """Insert or replace a registration (and its tags)."""
        ...

    def delete_webhook(self, webhook_id: str) -> None:
        """Remove the registration and everything queued for it."""
        ...

    def set_webhook_status(
        self, webhook_id: str, status: WebhookStatus, error: Doc | None, *, generation: int
    ) -> bool:
        """Set `status` and `error` only if the registration is still at `generation` (not
        replaced or deleted meanwhile); True if it was changed."""
        ...

    # --- webhooks: delivery queues (the outbox) -------------------------------------------

    def queue_event(self, event: QueuedEvent, queued_ns: int) -> bool:
        """Queue an event for the webhooks in `event.positions`, unless an event with this id
        was queued before (a redelivery): then nothing is written and False is returned."""
        ...

    def finish_deliveries(self, deliveries: list[Delivery]) -> None:
        """Remove delivered (or given up) deliveries from their queues; ones already gone are
        ignored."""
        ...

    def drop_deliveries(self, webhook_id: str) -> int:
        """Empty one webhook's queue; returns how many deliveries were dropped."""
        ...

    def prune_queued_events(self, queued_before_ns: int) -> int:
        """Forget events queued before this time that no queue holds any more (their ids stop
        deduplicating redeliveries); returns how many."""

    def replace_segment_tags(
        self, flow_id: str, tags: dict[int, dict[str, Any]], segments_updated: str
    ) -> None:
        """Replace the tags of the flow's segments starting at these starts (`{}`: no tags;
        a start without a segment is ignored) and set the flow's `segments_updated`."""
        ...

    def delete_segments(
        self, flow_id: str, segments: list[SegmentRecord], segments_updated: str
    ) -> None:
        """Remove these segments (by their start), set `segments_updated`, and shrink the
        flow's extent to its first and last remaining segments (the longest-segment bound
        may stay as it was). Objects are left to `unreferenced_objects`/`remove_objects`."""
        ...

    # --- object lifecycle ----------------------------------------------------------------

    def update_objects(self, objects: list[ObjectRecord]) -> None:
        """Replace registered objects' documents (instances changed)."""
        ...

    def expired_allocations(self, allocated_before_ns: int, limit: int) -> list[ObjectRecord]:
        """Objects allocated before this time and never registered (oldest first)."""
        ...

    def remove_objects(self, object_ids: list[str]) -> None:
        """Forget these objects: from now on they are unknown (a registration fails). Queue
        their bytes' deletion in the same transaction (`queue_media_jobs`)."""
        ...

    def queue_media_jobs(self, jobs: list[MediaJob]) -> None:
        """Queue byte deletions and copies; a job already queued is kept as it is."""
        ...

    def claim_media_jobs(
        self, kind: MediaJobKind, owner: str, now_ns: int, lease_ns: int, limit: int
    ) -> list[MediaJob]:
        """Lease up to `limit` jobs of this kind that nobody holds (or whose lease expired)
        to `owner` until `now_ns + lease_ns`, counting the attempt; oldest lease first."""
        ...

    def renew_media_jobs(self, jobs: list[MediaJob], owner: str, until_ns: int) -> int:
        """Hold these jobs until `until_ns`, those `owner` still holds (a long copy keeps
        its claim); returns how many."""
        ...

    def finish_media_jobs(self, jobs: list[MediaJob]) -> None:
        """Drop done jobs from the queue."""
        ...

    # --- deletion requests ---------------------------------------------------------------

    def put_deletion_request(self, record: DeletionRequestRecord) -> None:
        """Insert or replace a deletion request."""
        ...

    def purge_deletion_requests(self, expired_before_ns: int) -> int:
        """Delete finished requests whose `expiry` has passed; returns how many."""
        ...

    # --- soft-deleted flows (docs/ext-soft-delete.md) ----------------------------------

    def hide_flow(self, record: DeletedFlowRecord) -> None:
        """Soft-delete a live flow: it leaves every TAMS read (its row, tags, collection
        links, and its membership of other flows' `flow_collection`, as `delete_flow`), and
        is kept as `record`. Its segments, objects and analytics figures stay, hidden (the
        analytics totals no longer count it). The caller hides its source (`delete_source`)."""
        ...

    def restore_flow(self, flow: Doc) -> None:
        """Bring a soft-deleted flow back as `flow` (its stored document, possibly with a
        trimmed `flow_collection`), with its segments, extent and analytics figures, and
        forget its deleted record. The caller restores its source first."""
        ...

    def start_purge(self, flow_id: str, request_id: str) -> None:
        """Mark the purge of a soft-deleted flow started (it can no longer be restored) and
        drop its analytics figures, so removing its segments costs no per-segment counting."""
        ...

    def purge_segments(self, flow_id: str, limit: int) -> list[SegmentRecord]:
        """Remove up to `limit` segments of a soft-deleted flow whose purge has started and
        return them (their objects are then released by the caller). A live flow's segments
        are never touched: [] for a flow that is not soft-deleted."""
        ...

    def forget_deleted_flow(self, flow_id: str) -> None:
        """Drop a purged flow's record (and anything left of its figures)."""
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
