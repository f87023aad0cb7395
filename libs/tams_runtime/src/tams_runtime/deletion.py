"""Deleting segments, flows and objects: what the catalog and the segments service share.

Small deletions finish inside the command that asked for them. Large ones (more segments
than `MediaSettings.sync_delete_limit`) are answered 202 with a deletion request and run as
a chain of `deletion.step` commands on the segments topic, keyed by the flow id, so they are
applied in order with the flow's other commands, each step one transaction deleting at most
`delete_chunk_segments` segments and naming the next step as a follow-up command. A request
that deletes its flow ends with a `flows.delete` command to the catalog, which removes the
(now empty) flow and marks the request done in one transaction.

Every command of the chain carries the request's `step` number; a command whose number is
not the request's current one (a redelivered duplicate, or a restart by the resumer while
the chain was in fact alive) changes nothing, so at most one chain ever advances a request.

Objects: when segments go, the objects they used are checked in the same transaction; one
that nothing references any more (no segment in any flow, not the init object of a
remaining object) gets a `release` job due after `MediaSettings.release_grace_s`. Until
then it stays registered with its bytes, so a client that modifies a segment as the spec
says (delete it, then write it again) finds its object. When the job is due, the segments
service's worker checks again: an object still unreferenced is forgotten, so a later
registration of it fails as unknown, and the deletion of its controlled bytes is queued; a
worker deletes the bytes and then drops the queue entry. Uncontrolled (external) URLs are
never deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tams_runtime.events import flow_context, flow_event
from tams_runtime.settings import MediaSettings
from tams_schema.auth import AUTH_CLASSES_TAG, auth_classes_of
from tams_schema.envelopes import CommandEnvelope, ErrorBody, FollowUp, Outcome, TamsEvent
from tams_schema.timerange import TimeRange
from tams_store import WriteTx
from tams_store.port import DeletionRequestRecord, Doc, MediaJob, SegmentRecord

# In an object's document while it waits out its release grace: the flow it left and that
# flow's `auth_classes` (tams_gateway.routes.media `_may_use`).
RELEASED_FROM = "released_from"
STEP_COMMAND = "deletion.step"
FINISH_FLOW_COMMAND = "flows.delete"
# Soft-deleted flows (docs/ext-soft-delete.md), owned by the catalog like flows.
PURGE_COMMAND = "deleted_flows.purge"
RESTORE_COMMAND = "deleted_flows.restore"


def stamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as every server-set time in this store."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def segments_change_time(flow: Doc, now: datetime) -> datetime:
    """When a change to the flow's segments happened, for its `segments_updated` and its
    events: the command's time, or the flow's last such time if that is later. One consumer
    applies a flow's commands in order, but they are not always issued in that order (a
    deletion step is issued before the fetch that carries it commits, while requests keep
    arriving), and neither `segments_updated` nor the flow's event times may go back."""
    last = flow.get("segments_updated")
    if last:
        last_time = datetime.fromisoformat(last)
        if last_time > now:
            return last_time
    return now


def to_ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000) * 1000


# --- objects -----------------------------------------------------------------------------


def release_objects(
    tx: WriteTx,
    object_ids: Iterable[str],
    now: datetime,
    media: MediaSettings,
    flow: Doc | None = None,
) -> list[str]:
    """The objects (of deleted segments of `flow`) that nothing references any more:
    forgotten at once without a release grace (`forget_objects`), else each given a
    `release` job due when the grace ends (a later release moves it), and the `auth_classes`
    of the flow they leave, which decide who may use them meanwhile (the flow may be gone).
    Returns the ids found unreferenced."""
    if media.release_grace_s <= 0:
        return forget_objects(tx, object_ids, now, media)
    gone = tx.unreferenced_objects(sorted(set(object_ids)))
    if not gone:
        return []
    if flow is not None:
        released_from = {
            "flow_id": flow["id"],
            AUTH_CLASSES_TAG: list(auth_classes_of(flow.get("tags"))),
        }
        tx.update_objects(
            [
                replace(record, doc={**record.doc, RELEASED_FROM: released_from})
                for record in tx.get_objects(gone).values()
            ]
        )
    now_ns = to_ns(now)
    due_ns = now_ns + int(media.release_grace_s * 1_000_000_000)
    jobs = [MediaJob("release", object_id, "", now_ns, lease_until_ns=due_ns) for object_id in gone]
    tx.finish_media_jobs(jobs)  # an earlier release's job: this one's grace counts
    tx.queue_media_jobs(jobs)
    return gone


def released_classes(doc: Doc) -> tuple[str, ...] | None:
    """The `auth_classes` of the flow an object waiting out its release grace left (whose
    readers may use it meanwhile); None when it records none."""
    released_from = doc.get(RELEASED_FROM)
    if not isinstance(released_from, dict):
        return None
    return tuple(released_from.get(AUTH_CLASSES_TAG) or ())


def forget_objects(
    tx: WriteTx, object_ids: Iterable[str], now: datetime, media: MediaSettings
) -> list[str]:
    """Forget the objects that nothing references any more, then their init objects if
    those are now unreferenced too, and queue their controlled bytes for deletion. Returns
    the ids forgotten.

    An object allocated lately still has a valid put_url, and a client could upload to it
    again: a `sweep` deletes the bytes once more when no put_url can (its id stays in use
    until then, so it is not allocated again over stray bytes)."""
    removed: list[str] = []
    candidates = sorted(set(object_ids))
    now_ns = to_ns(now)
    window_ns = media.upload_window_s * 1_000_000_000
    while candidates:
        gone = tx.unreferenced_objects(candidates)
        if not gone:
            break
        records = tx.get_objects(gone)
        tx.remove_objects(gone)
        jobs = []
        for record in records.values():
            uploads_until_ns = record.allocated_ns + window_ns
            for storage_id in record.controlled_storage_ids:
                jobs.append(MediaJob("delete", record.object_id, storage_id, now_ns))
                if record.allocated_ns and uploads_until_ns > now_ns:
                    jobs.append(
                        MediaJob(
                            "sweep",
                            record.object_id,
                            storage_id,
                            now_ns,
                            lease_until_ns=uploads_until_ns,
                        )
                    )
        tx.queue_media_jobs(jobs)
        removed += gone
        candidates = sorted({i for r in records.values() if (i := r.init_object_id)})
    return removed


# --- segments ----------------------------------------------------------------------------


def delete_segments(
    tx: WriteTx,
    flow: Doc,
    segments: list[SegmentRecord],
    *,
    sparse: bool,
    now: datetime,
    media: MediaSettings,
) -> list[TamsEvent]:
    """Delete these segments of the flow (time order), release their objects, and describe
    it as `flows/segments_deleted` events whose timeranges start and end in deleted segments.

    Segments wholly inside a timerange are contiguous among the flow's segments, so one event
    covering the first to the last says it exactly; an `object_id` filter (`sparse`) can skip
    segments in between, so each deleted segment gets its own event then."""
    if not segments:
        return []
    context = flow_context(tx, flow)
    # The flow's segment time never goes back; the objects' jobs keep the command's time.
    changed_at = segments_change_time(flow, now)
    tx.delete_segments(flow["id"], segments, stamp(changed_at))
    release_objects(tx, [s.object_id for s in segments], now, media, flow)
    if sparse:
        ranges = [s.timerange for s in segments]
    else:
        first = TimeRange.parse(segments[0].timerange)
        ranges = [str(first.covering(TimeRange.parse(segments[-1].timerange)))]
    return [
        flow_event("segments_deleted", {"flow_id": flow["id"], "timerange": r}, context, changed_at)
        for r in ranges
    ]


# --- purging soft-deleted flows ----------------------------------------------------------


def purges(tx: WriteTx, record: DeletionRequestRecord) -> bool:
    """Whether this request is the purge of a soft-deleted flow (its flow is hidden, not
    live): its chunks then go through `purge_chunk` and publish no events, since the flow's
    `flows/deleted` was published when it was hidden."""
    hidden = tx.get_deleted_flow(record.flow_id)
    return hidden is not None and hidden.purge_request_id == record.id


def purge_chunk(tx: WriteTx, flow_id: str, limit: int, now: datetime, media: MediaSettings) -> bool:
    """Remove up to `limit` segments of a soft-deleted flow being purged and release their
    objects as any segment deletion does; True if there may be more."""
    hidden = tx.get_deleted_flow(flow_id)
    gone = tx.purge_segments(flow_id, limit)
    release_objects(
        tx, [s.object_id for s in gone], now, media, hidden.flow if hidden is not None else None
    )
    return len(gone) >= limit


def purge_command(flow_id: str) -> FollowUp:
    """Purge a soft-deleted flow whose retention has expired (sent by the segments
    service's worker to the catalog, which owns deleted flows)."""
    return FollowUp(
        service="catalog",
        command=CommandEnvelope(name=PURGE_COMMAND, key=flow_id, payload={"flow_id": flow_id}),
    )


# --- deletion requests -------------------------------------------------------------------


def new_request(
    flow_id: str,
    timerange: TimeRange,
    *,
    delete_flow: bool,
    object_id: str | None,
    principal: str | None,
    now: datetime,
    retention_s: int,
) -> DeletionRequestRecord:
    doc: Doc = {
        "id": str(uuid.uuid4()),
        "flow_id": flow_id,
        "timerange_to_delete": str(timerange),
        "timerange_remaining": str(timerange),
        "delete_flow": delete_flow,
        "status": "created",
        "created": stamp(now),
        "updated": stamp(now),
        "expiry": stamp(now + timedelta(seconds=retention_s)),
    }
    if principal:
        doc["created_by"] = principal
    return DeletionRequestRecord(doc=doc, object_id=object_id)


def advanced(
    record: DeletionRequestRecord, now: datetime, retention_s: int, **changes: object
) -> DeletionRequestRecord:
    """The request after a step made progress: the next step number, `updated` now, the
    expiry pushed on, no restarts counted."""
    doc = {
        **record.doc,
        **changes,
        "updated": stamp(now),
        "expiry": stamp(now + timedelta(seconds=retention_s)),
    }
    return replace(record, doc=doc, step=record.step + 1, resumes=0)


def finished(
    record: DeletionRequestRecord, now: datetime, retention_s: int
) -> DeletionRequestRecord:
    return advanced(record, now, retention_s, status="done", timerange_remaining="()")


def failed(
    record: DeletionRequestRecord, now: datetime, retention_s: int, summary: str
) -> DeletionRequestRecord:
    error = ErrorBody(type="DeletionFailed", summary=summary, time=now)
    return advanced(
        record,
        now,
        retention_s,
        status="error",
        error=error.as_json(),
    )


def stopped_by_read_only(
    record: DeletionRequestRecord, now: datetime, retention_s: int
) -> DeletionRequestRecord:
    """A request whose flow was made read-only while it ran ends here, in `error`: a
    read-only flow's segments may not be deleted (ADR 0005), whoever asked first. What was
    deleted before stays deleted; `timerange_remaining` says what was not."""
    left = record.doc.get("timerange_remaining")
    what = f"with {left} of its segments left" if left not in (None, "()") else "before the flow"
    return failed(
        record,
        now,
        retention_s,
        f"flow {record.flow_id} was made read-only; the deletion stopped {what} "
        "(make the flow writable and delete again)",
    )


def is_current(record: DeletionRequestRecord | None, step: object) -> bool:
    """Whether a chain command carrying `step` may act on this request."""
    return record is not None and not record.finished and record.step == step


def made_before(record: DeletionRequestRecord, flow: Doc) -> bool:
    """Whether `flow` was created after the request: the flow the request was made for has
    been deleted and another created with its id since (a request stalled meanwhile, then
    resumed). Such a request must not touch the new flow: it ends, done. Both times come
    from the gateways' clocks (`issued_at`), which are assumed to agree to well within the
    seconds a delete and a re-create take."""
    created = flow.get("created")
    return isinstance(created, str) and created > str(record.doc["created"])


def step_command(record: DeletionRequestRecord) -> FollowUp:
    """The next chunk of a request, for the segments service."""
    return FollowUp(
        service="segments",
        command=CommandEnvelope(
            name=STEP_COMMAND,
            key=record.flow_id,
            payload={"request_id": record.id, "step": record.step},
        ),
    )


def finish_flow_command(record: DeletionRequestRecord) -> FollowUp:
    """The last act of a flow deletion, for the catalog: remove the emptied flow."""
    return FollowUp(
        service="catalog",
        command=CommandEnvelope(
            name=FINISH_FLOW_COMMAND,
            key=record.flow_id,
            payload={
                "flow_id": record.flow_id,
                "deletion_request_id": record.id,
                "step": record.step,
            },
        ),
    )


def accepted(record: DeletionRequestRecord) -> Outcome:
    """202 with the request and where to follow it; the first step starts the chain."""
    return Outcome(
        status=202,
        headers={"Location": f"/flow-delete-requests/{record.id}"},
        body=record.doc,
        commands=[step_command(record)],
    )


def chain_outcome(events: list[TamsEvent], commands: list[FollowUp] | None = None) -> Outcome:
    """What a chain command answers (nobody waits for it: no reply topic)."""
    return Outcome(status=200, events=events, commands=commands or [])
