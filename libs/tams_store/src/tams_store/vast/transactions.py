"""Transaction objects of the VAST adapter: the port's ReadTx and WriteTx.

Each wraps one open VAST transaction and delegates to one module per domain (`catalog`,
`media`, `outcomes`, `webhooks`, `lifecycle`, `analytics`). Adding a port method: write it
in the domain module as a function of `Tables` (a new table: a new step in
`tams_schema.tables.MIGRATIONS`), and add the one-line delegation here. A write path that
inserts, changes or deletes flows, sources, segments or objects must report it to
`counters` (VAST has no triggers); the store writes the summed counters at the end of the
work (`VastWriteTx.finish`).

Reads inside a write transaction see that transaction's own inserts, updates and deletes
(the domain code writes and reads back within one `work`); VAST transactions provide this
(the SDK's tests and notes show a scan seeing its own transaction's changes). It is one of
the behaviours the `vast`-marked tests check on a real cluster.
"""

from __future__ import annotations

from typing import Any

from tams_schema.envelopes import Outcome
from tams_schema.timerange import TimeRange
from tams_store.analytics import (
    BackendUsage,
    CatalogCounts,
    CoveragePage,
    FlowFilter,
    UsagePage,
)
from tams_store.port import (
    SEGMENT_TAG_SCAN_LIMIT,
    DeletedFlowRecord,
    DeletionRequestRecord,
    DeletionRequestSort,
    Delivery,
    Doc,
    FlowQuery,
    MediaJob,
    MediaJobKind,
    ObjectAllocation,
    ObjectRecord,
    Page,
    QueuedEvent,
    SegmentPage,
    SegmentRecord,
    SourceQuery,
    TagFilter,
    WebhookQuery,
    WebhookRecord,
    WebhookStatus,
)
from tams_store.vast import (
    analytics,
    catalog,
    counters,
    lifecycle,
    media,
    outcomes,
    soft_delete,
    webhooks,
)
from tams_store.vast.tables import TableCatalog, Tables


class VastReadTx:
    def __init__(self, tx: Any, tables: TableCatalog) -> None:
        self.tables = Tables(tx, tables)

    def unreferenced_objects(self, object_ids: list[str]) -> list[str]:
        return media.unreferenced_objects(self.tables, object_ids)

    def get_service_info(self) -> Doc:
        return outcomes.get_service_info(self.tables)

    def get_source(self, source_id: str) -> Doc | None:
        return catalog.get_source(self.tables, source_id)

    def source_routing(self, source_id: str) -> Doc | None:
        source = catalog.get_source(self.tables, source_id)
        if source is None:
            return None
        return {k: source[k] for k in ("tags", "collected_by") if k in source}

    def list_sources(self, query: SourceQuery) -> Page:
        return catalog.list_sources(self.tables, query)

    def get_flow(self, flow_id: str) -> Doc | None:
        return catalog.get_flow(self.tables, flow_id)

    def flow_timerange(self, flow_id: str, within: TimeRange | None = None) -> TimeRange:
        bounds = None if within is None else within.half_open()
        if within is not None and bounds is None:
            return TimeRange.never()
        ends = media.first_and_last(self.tables, flow_id, bounds)
        if ends is None:
            return TimeRange.never()
        return TimeRange.parse(ends[0]).covering(TimeRange.parse(ends[1]))

    def list_flows(self, query: FlowQuery) -> Page:
        return catalog.list_flows(self.tables, query)

    def get_profile(self, profile_id: str) -> Doc | None:
        return catalog.get_profile(self.tables, profile_id)

    def list_profiles(
        self,
        *,
        format: str | None,
        codec: str | None,
        label: str | None,
        page: str | None,
        limit: int,
    ) -> Page:
        return catalog.list_profiles(
            self.tables, format=format, codec=codec, label=label, page=page, limit=limit
        )

    def get_objects(self, object_ids: list[str]) -> dict[str, ObjectRecord]:
        return media.get_objects(self.tables, object_ids)

    def object_flows(
        self, object_id: str, flow_tags: TagFilter, page: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        return media.object_flows(self.tables, object_id, flow_tags, page, limit)

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
        bounds = None if timerange is None else timerange.half_open()
        if timerange is not None and bounds is None:
            return SegmentPage(items=[], limit=limit)
        return media.list_segments(
            self.tables,
            flow_id,
            bounds=bounds,
            object_id=object_id,
            reverse=reverse,
            page=page,
            limit=limit,
            tags=tags,
            scan_limit=max(1, scan_limit),
        )

    # --- webhooks ------------------------------------------------------------------------

    def get_webhook(self, webhook_id: str) -> WebhookRecord | None:
        return webhooks.get_webhook(self.tables, webhook_id)

    def list_webhooks(self, query: WebhookQuery) -> Page:
        return webhooks.list_webhooks(self.tables, query)

    def all_webhooks(self) -> list[WebhookRecord]:
        return webhooks.all_webhooks(self.tables)

    def pending_deliveries(
        self, webhook_id: str, from_seq: int, until_seq: int, limit: int
    ) -> list[Delivery]:
        return webhooks.pending_deliveries(self.tables, webhook_id, from_seq, until_seq, limit)

    def delivery_queues(self, webhook_id: str | None = None) -> dict[str, tuple[int, int]]:
        return webhooks.delivery_queues(self.tables, webhook_id)

    # --- deletion and object bytes -------------------------------------------------------

    def segments_within(
        self, flow_id: str, timerange: TimeRange, *, object_id: str | None, limit: int
    ) -> list[SegmentRecord]:
        bounds = timerange.half_open()
        if bounds is None:
            return []
        return media.segments_within(self.tables, flow_id, bounds, object_id, limit)

    def get_deletion_request(self, request_id: str) -> DeletionRequestRecord | None:
        return lifecycle.get_deletion_request(self.tables, request_id)

    def list_deletion_requests(
        self, *, sort_by: DeletionRequestSort, reverse_order: bool, page: str | None, limit: int
    ) -> Page:
        return lifecycle.list_deletion_requests(self.tables, sort_by, reverse_order, page, limit)

    def unfinished_deletion_requests(
        self, updated_before_ns: int, limit: int
    ) -> list[DeletionRequestRecord]:
        return lifecycle.unfinished_deletion_requests(self.tables, updated_before_ns, limit)

    def media_jobs_of(self, object_ids: list[str]) -> list[MediaJob]:
        return lifecycle.media_jobs_of(self.tables, object_ids)

    def get_deleted_flow(self, flow_id: str) -> DeletedFlowRecord | None:
        return soft_delete.get_deleted_flow(self.tables, flow_id)

    def list_deleted_flows(
        self, page: str | None, limit: int
    ) -> tuple[list[DeletedFlowRecord], str | None]:
        return soft_delete.list_deleted_flows(self.tables, page, limit)

    def due_deleted_flows(self, now_ns: int, limit: int) -> list[DeletedFlowRecord]:
        return soft_delete.due_deleted_flows(self.tables, now_ns, limit)

    # --- analytics -------------------------------------------------------------------------

    def catalog_counts(self) -> CatalogCounts:
        return analytics.catalog_counts(self.tables)

    def flow_usage(self, flows: FlowFilter, page: str | None, limit: int) -> UsagePage:
        return analytics.flow_usage(self.tables, flows, page, limit)

    def storage_usage(self) -> list[BackendUsage]:
        return analytics.storage_usage(self.tables)

    def flow_coverage(
        self,
        flows: FlowFilter,
        window: tuple[int, int] | None,
        gap_limit: int,
        page: str | None,
        limit: int,
    ) -> CoveragePage:
        return analytics.flow_coverage(self.tables, flows, window, gap_limit, page, limit)


class VastWriteTx(VastReadTx):
    def finish(self) -> None:
        """Write what the work left pending (summed counters): the last act of a write."""
        counters.flush(self.tables)

    def recorded_outcome(self, command_id: str) -> Outcome | None:
        return outcomes.recorded_outcome(self.tables, command_id)

    def record_outcome(self, command_id: str, outcome: Outcome) -> None:
        outcomes.record_outcome(self.tables, command_id, outcome)

    def forget_outcomes(self, recorded_before_ns: int, limit: int) -> int:
        return outcomes.forget_outcomes(self.tables, recorded_before_ns, limit)

    def set_service_info(self, info: Doc) -> None:
        outcomes.set_service_info(self.tables, info)

    def put_source(self, source: Doc) -> None:
        catalog.put_source(self.tables, source)

    def delete_source(self, source_id: str) -> None:
        catalog.delete_source(self.tables, source_id)

    def count_flows_of_source(self, source_id: str) -> int:
        return catalog.count_flows_of_source(self.tables, source_id)

    def put_flow(self, flow: Doc) -> None:
        catalog.put_flow(self.tables, flow)

    def delete_flow(self, flow_id: str) -> None:
        catalog.delete_flow(self.tables, flow_id)

    def put_profile(self, profile: Doc) -> None:
        catalog.put_profile(self.tables, profile)

    def existing_object_ids(self, object_ids: list[str]) -> set[str]:
        return media.existing_object_ids(self.tables, object_ids)

    def allocate_objects(self, allocations: list[ObjectAllocation]) -> None:
        media.allocate_objects(self.tables, allocations)

    def overlapping_segments(self, flow_id: str, start: int, end: int) -> list[tuple[int, int]]:
        return media.overlapping(self.tables, flow_id, start, end)

    def add_segments(
        self,
        flow_id: str,
        segments: list[SegmentRecord],
        objects: list[ObjectRecord],
        segments_updated: str,
    ) -> None:
        media.add_segments(self.tables, flow_id, segments, objects, segments_updated)

    # --- webhooks ------------------------------------------------------------------------

    def put_webhook(self, record: WebhookRecord) -> None:
        webhooks.put_webhook(self.tables, record)

    def delete_webhook(self, webhook_id: str) -> None:
        webhooks.delete_webhook(self.tables, webhook_id)

    def set_webhook_status(
        self, webhook_id: str, status: WebhookStatus, error: Doc | None, *, generation: int
    ) -> bool:
        return webhooks.set_webhook_status(self.tables, webhook_id, status, error, generation)

    def queue_event(self, event: QueuedEvent, queued_ns: int) -> bool:
        return webhooks.queue_event(self.tables, event, queued_ns)

    def finish_deliveries(self, deliveries: list[Delivery]) -> None:
        webhooks.finish_deliveries(self.tables, deliveries)

    def drop_deliveries(self, webhook_id: str) -> int:
        return webhooks.drop_deliveries(self.tables, webhook_id)

    def prune_queued_events(self, queued_before_ns: int) -> int:
        return webhooks.prune_queued_events(self.tables, queued_before_ns)

    # --- segment deletion and objects ----------------------------------------------------

    def replace_segment_tags(
        self, flow_id: str, tags: dict[int, dict[str, Any]], segments_updated: str
    ) -> None:
        media.replace_segment_tags(self.tables, flow_id, tags, segments_updated)

    def delete_segments(
        self, flow_id: str, segments: list[SegmentRecord], segments_updated: str
    ) -> None:
        if segments:
            media.delete_segments(
                self.tables, flow_id, [s.start for s in segments], segments_updated
            )

    def update_objects(self, objects: list[ObjectRecord]) -> None:
        media.update_objects(self.tables, objects)

    def expired_allocations(self, allocated_before_ns: int, limit: int) -> list[ObjectRecord]:
        return media.expired_allocations(self.tables, allocated_before_ns, limit)

    def remove_objects(self, object_ids: list[str]) -> None:
        media.remove_objects(self.tables, object_ids)

    def queue_media_jobs(self, jobs: list[MediaJob]) -> None:
        lifecycle.queue_media_jobs(self.tables, jobs)

    def claim_media_jobs(
        self, kind: MediaJobKind, owner: str, now_ns: int, lease_ns: int, limit: int
    ) -> list[MediaJob]:
        return lifecycle.claim_media_jobs(self.tables, kind, owner, now_ns, lease_ns, limit)

    def renew_media_jobs(self, jobs: list[MediaJob], owner: str, until_ns: int) -> int:
        return lifecycle.renew_media_jobs(self.tables, jobs, owner, until_ns)

    def finish_media_jobs(self, jobs: list[MediaJob]) -> None:
        lifecycle.finish_media_jobs(self.tables, jobs)

    # --- deletion requests ---------------------------------------------------------------

    def put_deletion_request(self, record: DeletionRequestRecord) -> None:
        lifecycle.put_deletion_request(self.tables, record)

    def purge_deletion_requests(self, expired_before_ns: int) -> int:
        return lifecycle.purge_deletion_requests(self.tables, expired_before_ns)

    def hide_flow(self, record: DeletedFlowRecord) -> None:
        soft_delete.hide_flow(self.tables, record)

    def restore_flow(self, flow: Doc) -> None:
        soft_delete.restore_flow(self.tables, flow)

    def start_purge(self, flow_id: str, request_id: str) -> None:
        soft_delete.start_purge(self.tables, flow_id, request_id)

    def purge_segments(self, flow_id: str, limit: int) -> list[SegmentRecord]:
        return soft_delete.purge_segments(self.tables, flow_id, limit)

    def forget_deleted_flow(self, flow_id: str) -> None:
        soft_delete.forget_deleted_flow(self.tables, flow_id)
