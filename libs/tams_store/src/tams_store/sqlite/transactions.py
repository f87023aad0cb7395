"""Transaction objects of the SQLite adapter: the port's ReadTx and WriteTx."""

from __future__ import annotations

import json
import sqlite3
import time
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
from tams_store.sqlite import analytics, catalog, lifecycle, media, soft_delete, webhooks

# Old outcomes found through the index on `recorded_ns`: read from the rows, the time sits
# past an outcome of up to hundreds of KB (a bulk registration's), and every pass read them
# all, in a write transaction (a scale audit saw 120-250 ms stalls once a minute).
FORGET_OUTCOMES = (
    "DELETE FROM command_outcomes WHERE rowid IN (SELECT rowid FROM command_outcomes "
    "WHERE recorded_ns < ? ORDER BY recorded_ns LIMIT ?)"
)


class SqliteReadTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def unreferenced_objects(self, object_ids: list[str]) -> list[str]:
        return media.unreferenced_objects(self.conn, object_ids)

    def get_service_info(self) -> Doc:
        row = self.conn.execute("SELECT doc FROM service_info WHERE id = 1").fetchone()
        return dict(json.loads(row["doc"])) if row else {}

    def get_source(self, source_id: str) -> Doc | None:
        return catalog.get_source(self.conn, source_id)

    def source_routing(self, source_id: str) -> Doc | None:
        return catalog.source_routing(self.conn, source_id)

    def list_sources(self, query: SourceQuery) -> Page:
        return catalog.list_sources(self.conn, query)

    def get_flow(self, flow_id: str) -> Doc | None:
        return catalog.get_flow(self.conn, flow_id)

    def flow_timerange(self, flow_id: str, within: TimeRange | None = None) -> TimeRange:
        return catalog.flow_timerange(self.conn, flow_id, within)

    def list_flows(self, query: FlowQuery) -> Page:
        return catalog.list_flows(self.conn, query)

    def get_profile(self, profile_id: str) -> Doc | None:
        return catalog.get_profile(self.conn, profile_id)

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
            self.conn, format=format, codec=codec, label=label, page=page, limit=limit
        )

    def get_objects(self, object_ids: list[str]) -> dict[str, ObjectRecord]:
        return media.get_objects(self.conn, object_ids)

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
            self.conn,
            flow_id,
            bounds=bounds,
            object_id=object_id,
            reverse=reverse,
            page=page,
            limit=limit,
            tags=tags,
            scan_limit=max(1, scan_limit),
        )

    def object_flows(
        self, object_id: str, flow_tags: TagFilter, page: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        return media.object_flows(self.conn, object_id, flow_tags, page, limit)

    def get_webhook(self, webhook_id: str) -> WebhookRecord | None:
        return webhooks.get_webhook(self.conn, webhook_id)

    def list_webhooks(self, query: WebhookQuery) -> Page:
        return webhooks.list_webhooks(self.conn, query)

    def all_webhooks(self) -> list[WebhookRecord]:
        return webhooks.all_webhooks(self.conn)

    def pending_deliveries(
        self, webhook_id: str, from_seq: int, until_seq: int, limit: int
    ) -> list[Delivery]:
        return webhooks.pending_deliveries(self.conn, webhook_id, from_seq, until_seq, limit)

    def delivery_queues(self, webhook_id: str | None = None) -> dict[str, tuple[int, int]]:
        return webhooks.delivery_queues(self.conn, webhook_id)

    def segments_within(
        self, flow_id: str, timerange: TimeRange, *, object_id: str | None, limit: int
    ) -> list[SegmentRecord]:
        bounds = timerange.half_open()
        if bounds is None:
            return []
        return media.segments_within(self.conn, flow_id, bounds, object_id, limit)

    def get_deletion_request(self, request_id: str) -> DeletionRequestRecord | None:
        return lifecycle.get_deletion_request(self.conn, request_id)

    def list_deletion_requests(
        self, *, sort_by: DeletionRequestSort, reverse_order: bool, page: str | None, limit: int
    ) -> Page:
        return lifecycle.list_deletion_requests(self.conn, sort_by, reverse_order, page, limit)

    def media_jobs_of(self, object_ids: list[str]) -> list[MediaJob]:
        return lifecycle.media_jobs_of(self.conn, object_ids)

    def get_deleted_flow(self, flow_id: str) -> DeletedFlowRecord | None:
        return soft_delete.get_deleted_flow(self.conn, flow_id)

    def list_deleted_flows(
        self, page: str | None, limit: int
    ) -> tuple[list[DeletedFlowRecord], str | None]:
        return soft_delete.list_deleted_flows(self.conn, page, limit)

    def due_deleted_flows(self, now_ns: int, limit: int) -> list[DeletedFlowRecord]:
        return soft_delete.due_deleted_flows(self.conn, now_ns, limit)

    def unfinished_deletion_requests(
        self, updated_before_ns: int, limit: int
    ) -> list[DeletionRequestRecord]:
        return lifecycle.unfinished_deletion_requests(self.conn, updated_before_ns, limit)

    def catalog_counts(self) -> CatalogCounts:
        return analytics.catalog_counts(self.conn)

    def flow_usage(self, flows: FlowFilter, page: str | None, limit: int) -> UsagePage:
        return analytics.flow_usage(self.conn, flows, page, limit)

    def storage_usage(self) -> list[BackendUsage]:
        return analytics.storage_usage(self.conn)

    def flow_coverage(
        self,
        flows: FlowFilter,
        window: tuple[int, int] | None,
        gap_limit: int,
        page: str | None,
        limit: int,
    ) -> CoveragePage:
        return analytics.flow_coverage(self.conn, flows, window, gap_limit, page, limit)


class SqliteWriteTx(SqliteReadTx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        # The size of each object this transaction read or registered, for the segment
        # counters: a registration reads its objects just before it inserts their segments.
        self._object_sizes: dict[str, int | None] = {}

    def get_objects(self, object_ids: list[str]) -> dict[str, ObjectRecord]:
        found = media.get_objects(self.conn, object_ids)
        self._object_sizes.update((object_id, o.size) for object_id, o in found.items())
        return found

    def recorded_outcome(self, command_id: str) -> Outcome | None:
        row = self.conn.execute(
            "SELECT outcome FROM command_outcomes WHERE command_id = ?", (command_id,)
        ).fetchone()
        return Outcome.model_validate_json(row["outcome"]) if row else None

    def record_outcome(self, command_id: str, outcome: Outcome) -> None:
        self.conn.execute(
            "INSERT INTO command_outcomes (command_id, outcome, recorded_ns) VALUES (?, ?, ?)",
            (command_id, outcome.model_dump_json(), time.time_ns()),
        )

    def forget_outcomes(self, recorded_before_ns: int, limit: int) -> int:
        deleted = self.conn.execute(FORGET_OUTCOMES, (recorded_before_ns, limit))
        return deleted.rowcount

    def set_service_info(self, info: Doc) -> None:
        self.conn.execute(
            "INSERT INTO service_info (id, doc) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            (json.dumps(info),),
        )

    def put_source(self, source: Doc) -> None:
        catalog.put_source(self.conn, source)

    def delete_source(self, source_id: str) -> None:
        catalog.delete_source(self.conn, source_id)

    def count_flows_of_source(self, source_id: str) -> int:
        return catalog.count_flows_of_source(self.conn, source_id)

    def put_flow(self, flow: Doc) -> None:
        catalog.put_flow(self.conn, flow)

    def delete_flow(self, flow_id: str) -> None:
        catalog.delete_flow(self.conn, flow_id)

    def put_profile(self, profile: Doc) -> None:
        catalog.put_profile(self.conn, profile)

    def existing_object_ids(self, object_ids: list[str]) -> set[str]:
        if not object_ids:
            return set()
        marks = ",".join("?" * len(object_ids))
        rows = self.conn.execute(
            f"SELECT id FROM objects WHERE id IN ({marks}) UNION "
            f"SELECT object_id FROM media_jobs WHERE object_id IN ({marks})",
            [*object_ids, *object_ids],
        )
        return {row[0] for row in rows}

    def allocate_objects(self, allocations: list[ObjectAllocation]) -> None:
        self.conn.executemany(
            "INSERT INTO objects (id, allocated_flow_id, storage_id, content_type, allocated_ns) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (a.object_id, a.flow_id, a.storage_id, a.content_type, a.allocated_ns)
                for a in allocations
            ],
        )

    def overlapping_segments(self, flow_id: str, start: int, end: int) -> list[tuple[int, int]]:
        return media.overlapping(self.conn, flow_id, start, end)

    def add_segments(
        self,
        flow_id: str,
        segments: list[SegmentRecord],
        objects: list[ObjectRecord],
        segments_updated: str,
    ) -> None:
        if not segments:
            return
        # Objects first: their sizes are then known when the segments are counted.
        media.register_objects(self.conn, objects)
        for obj in objects:
            if obj.size is None:
                # The stored size is kept (coalesce): ask the table again.
                self._object_sizes.pop(obj.object_id, None)
            else:
                self._object_sizes[obj.object_id] = obj.size
        media.insert_segments(self.conn, flow_id, segments, self._object_sizes)
        media.update_flow_extent(
            self.conn,
            flow_id,
            min(s.start for s in segments),
            max(s.end for s in segments),
            max(s.end - s.start for s in segments),
            segments_updated,
        )

    def put_webhook(self, record: WebhookRecord) -> None:
        webhooks.put_webhook(self.conn, record)

    def delete_webhook(self, webhook_id: str) -> None:
        webhooks.delete_webhook(self.conn, webhook_id)

    def set_webhook_status(
        self, webhook_id: str, status: WebhookStatus, error: Doc | None, *, generation: int
    ) -> bool:
        return webhooks.set_webhook_status(self.conn, webhook_id, status, error, generation)

    def queue_event(self, event: QueuedEvent, queued_ns: int) -> bool:
        return webhooks.queue_event(self.conn, event, queued_ns)

    def finish_deliveries(self, deliveries: list[Delivery]) -> None:
        webhooks.finish_deliveries(self.conn, deliveries)

    def drop_deliveries(self, webhook_id: str) -> int:
        return webhooks.drop_deliveries(self.conn, webhook_id)

    def prune_queued_events(self, queued_before_ns: int) -> int:
        return webhooks.prune_queued_events(self.conn, queued_before_ns)

    def replace_segment_tags(
        self, flow_id: str, tags: dict[int, dict[str, Any]], segments_updated: str
    ) -> None:
        media.replace_segment_tags(self.conn, flow_id, tags, segments_updated)

    def delete_segments(
        self, flow_id: str, segments: list[SegmentRecord], segments_updated: str
    ) -> None:
        if segments:
            media.delete_segments(self.conn, flow_id, [s.start for s in segments], segments_updated)

    def update_objects(self, objects: list[ObjectRecord]) -> None:
        media.update_objects(self.conn, objects)

    def expired_allocations(self, allocated_before_ns: int, limit: int) -> list[ObjectRecord]:
        return media.expired_allocations(self.conn, allocated_before_ns, limit)

    def remove_objects(self, object_ids: list[str]) -> None:
        for object_id in object_ids:
            self._object_sizes.pop(object_id, None)
        media.remove_objects(self.conn, object_ids)

    def queue_media_jobs(self, jobs: list[MediaJob]) -> None:
        lifecycle.queue_media_jobs(self.conn, jobs)

    def claim_media_jobs(
        self, kind: MediaJobKind, owner: str, now_ns: int, lease_ns: int, limit: int
    ) -> list[MediaJob]:
        return lifecycle.claim_media_jobs(self.conn, kind, owner, now_ns, lease_ns, limit)

    def renew_media_jobs(self, jobs: list[MediaJob], owner: str, until_ns: int) -> int:
        return lifecycle.renew_media_jobs(self.conn, jobs, owner, until_ns)

    def finish_media_jobs(self, jobs: list[MediaJob]) -> None:
        lifecycle.finish_media_jobs(self.conn, jobs)

    def put_deletion_request(self, record: DeletionRequestRecord) -> None:
        lifecycle.put_deletion_request(self.conn, record)

    def purge_deletion_requests(self, expired_before_ns: int) -> int:
        return lifecycle.purge_deletion_requests(self.conn, expired_before_ns)

    def hide_flow(self, record: DeletedFlowRecord) -> None:
        soft_delete.hide_flow(self.conn, record)

    def restore_flow(self, flow: Doc) -> None:
        soft_delete.restore_flow(self.conn, flow)

    def start_purge(self, flow_id: str, request_id: str) -> None:
        soft_delete.start_purge(self.conn, flow_id, request_id)

    def purge_segments(self, flow_id: str, limit: int) -> list[SegmentRecord]:
        return soft_delete.purge_segments(self.conn, flow_id, limit)

    def forget_deleted_flow(self, flow_id: str) -> None:
        soft_delete.forget_deleted_flow(self.conn, flow_id)
