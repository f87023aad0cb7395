"""DELETE /flows/{id}/segments and the steps of asynchronous deletions.

`segments.delete` removes the segments lying wholly inside `timerange` (default `_`), only
those of `object_id` if given: at once (204) when there are at most `sync_delete_limit`,
otherwise it answers 202 with a deletion request and `deletion.step` commands do the work in
chunks (tams_runtime.deletion explains the chain). A step deletes the first chunk of the
request's `timerange_remaining`, moves `timerange_remaining` past it, and names the next step;
the last step of a flow deletion hands over to the catalog.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tams_runtime import deletion
from tams_runtime.settings import MediaSettings
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_schema.timerange import TimeRange
from tams_store import WriteTx
from tams_store.port import DeletionRequestRecord


def now_of(command: CommandEnvelope) -> datetime:
    return command.issued_at.astimezone(UTC)


class SegmentDeletion:
    """The `segments.delete` command handler."""

    def __init__(self, media: MediaSettings) -> None:
        self.media = media

    def __call__(self, tx: WriteTx, command: CommandEnvelope) -> Outcome:
        payload = command.payload
        flow_id: str = payload["flow_id"]
        object_id: str | None = payload.get("object_id")
        timerange = TimeRange.parse(payload.get("timerange") or "_")
        flow = tx.get_flow(flow_id)
        if flow is None:
            return Outcome.error(404, "NotFound", f"flow {flow_id} does not exist")
        if flow.get("read_only"):
            return Outcome.error(403, "Forbidden", f"flow {flow_id} is read-only")
        now = now_of(command)
        limit = self.media.sync_delete_limit
        segments = tx.segments_within(flow_id, timerange, object_id=object_id, limit=limit + 1)
        if len(segments) > limit:
            record = deletion.new_request(
                flow_id,
                timerange,
                delete_flow=False,
                object_id=object_id,
                principal=command.principal,
                now=now,
                retention_s=self.media.deletion_request_retention_s,
            )
            tx.put_deletion_request(record)
            return deletion.accepted(record)
        events = deletion.delete_segments(
            tx, flow, segments, sparse=object_id is not None, now=now, media=self.media
        )
        return Outcome(status=204, events=events)


class DeletionStep:
    """The `deletion.step` command handler: one chunk of a deletion request."""

    def __init__(self, media: MediaSettings) -> None:
        self.media = media
        self.retention_s = media.deletion_request_retention_s

    def __call__(self, tx: WriteTx, command: CommandEnvelope) -> Outcome:
        payload = command.payload
        record = tx.get_deletion_request(payload["request_id"])
        if record is None or not deletion.is_current(record, payload["step"]):
            return deletion.chain_outcome([])  # stale or repeated: changes nothing
        now = now_of(command)
        flow = tx.get_flow(record.flow_id)
        if flow is None and deletion.purges(tx, record):
            return self._purge_step(tx, record, now)
        if flow is None or deletion.made_before(record, flow):
            # Deleted meanwhile (by another request): its segments went with it; a flow
            # created since with its id is not this request's.
            tx.put_deletion_request(deletion.finished(record, now, self.retention_s))
            return deletion.chain_outcome([])
        if flow.get("read_only"):
            tx.put_deletion_request(deletion.stopped_by_read_only(record, now, self.retention_s))
            return deletion.chain_outcome([])
        remaining = TimeRange.parse(record.doc["timerange_remaining"])
        chunk = self.media.delete_chunk_segments
        segments = tx.segments_within(
            record.flow_id, remaining, object_id=record.object_id, limit=chunk
        )
        events = deletion.delete_segments(
            tx, flow, segments, sparse=record.object_id is not None, now=now, media=self.media
        )
        if len(segments) == chunk:
            after = remaining.intersection(TimeRange.from_ns(segments[-1].end, None))
            record = deletion.advanced(
                record, now, self.retention_s, status="started", timerange_remaining=str(after)
            )
            tx.put_deletion_request(record)
            return deletion.chain_outcome(events, [deletion.step_command(record)])
        if record.doc.get("delete_flow"):
            record = deletion.advanced(
                record, now, self.retention_s, status="started", timerange_remaining="()"
            )
            tx.put_deletion_request(record)
            return deletion.chain_outcome(events, [deletion.finish_flow_command(record)])
        tx.put_deletion_request(deletion.finished(record, now, self.retention_s))
        return deletion.chain_outcome(events)

    def _purge_step(self, tx: WriteTx, record: DeletionRequestRecord, now: datetime) -> Outcome:
        """One chunk of the purge of a soft-deleted flow (docs/ext-soft-delete.md): no
        events (its deletion was published when it was hidden); the catalog finishes."""
        more = deletion.purge_chunk(
            tx, record.flow_id, self.media.delete_chunk_segments, now, self.media
        )
        if more:
            record = deletion.advanced(record, now, self.retention_s, status="started")
            tx.put_deletion_request(record)
            return deletion.chain_outcome([], [deletion.step_command(record)])
        record = deletion.advanced(
            record, now, self.retention_s, status="started", timerange_remaining="()"
        )
        tx.put_deletion_request(record)
        return deletion.chain_outcome([], [deletion.finish_flow_command(record)])
