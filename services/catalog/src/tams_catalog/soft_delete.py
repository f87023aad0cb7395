"""Soft delete of flows (docs/ext-soft-delete.md): hide, restore, purge.

With `TAMS_SOFT_DELETE_RETENTION_S` above 0, `DELETE /flows/{id}` hides the flow instead of
deleting it: the store moves it out of every TAMS read and keeps it, segments and objects
included, until `purge_after`. The events are those of a deletion (a plain TAMS client sees
a deletion); a restore publishes the events of a creation, because to a subscriber the flow
(and a source hidden with it) appears again, exactly as a new one would.

A purge goes through the normal deletion path: a deletion request whose `deletion.step`
chain removes the segments chunk by chunk (releasing objects for garbage collection), then
the catalog's `flows.delete` finish drops the record. A small flow is purged at once (204).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tams_catalog import domain
from tams_catalog.domain import CatalogError, Doc
from tams_catalog.membership import leave_collections, source_updates, sources_touched
from tams_runtime import deletion, events
from tams_runtime.settings import MediaSettings
from tams_schema.envelopes import CommandEnvelope, Outcome, TamsEvent
from tams_schema.timerange import TimeRange
from tams_store import WriteTx
from tams_store.documents import COMPUTED_KEYS
from tams_store.port import DeletedFlowRecord, DeletionRequestRecord


def conflict(summary: str) -> CatalogError:
    return CatalogError(409, "Conflict", summary)


def is_hidden(tx: WriteTx, flow_id: str) -> bool:
    return tx.get_deleted_flow(flow_id) is not None


def refuse_hidden_id(tx: WriteTx, flow_id: str) -> None:
    """A new flow cannot take the id of a soft-deleted one: the hidden flow's segments are
    kept under that id, and would become the new flow's."""
    if is_hidden(tx, flow_id):
        raise conflict(
            f"flow {flow_id} is soft-deleted: restore it (POST /deleted-flows/{flow_id}/restore) "
            f"or purge it (DELETE /deleted-flows/{flow_id}) before reusing its id"
        )


def hide(
    tx: WriteTx,
    flow: Doc,
    *,
    principal: str | None,
    now: datetime,
    retention_s: int,
) -> list[TamsEvent]:
    """Soft-delete a live flow (and its source, if this was its last flow). Returns the
    events a deletion publishes: `flows/segments_deleted` for its extent, `flows/deleted`,
    and `sources/deleted` for a source left without flows."""
    flow_id = flow["id"]
    extent = tx.flow_timerange(flow_id)
    context = events.flow_context(tx, flow)
    source_id = flow["source_id"]
    source = tx.get_source(source_id) if tx.count_flows_of_source(source_id) == 1 else None
    purge_after = now + timedelta(seconds=retention_s)
    collectors_changed = leave_collections(tx, flow, now)
    # Its members' sources are collected by its source no more.
    members_sources = sources_touched(tx, flow, {**flow, "flow_collection": []})
    tx.hide_flow(
        DeletedFlowRecord(
            flow={k: v for k, v in flow.items() if k not in COMPUTED_KEYS},
            deleted=deletion.stamp(now),
            deleted_ns=deletion.to_ns(now),
            purge_after=deletion.stamp(purge_after),
            purge_after_ns=deletion.to_ns(purge_after),
            deleted_by=principal,
            timerange=str(extent),
            source=None if source is None else _without_computed(source),
        )
    )
    changes: list[TamsEvent] = []
    if not extent.is_empty:
        changes.append(
            events.flow_event(
                "segments_deleted", {"flow_id": flow_id, "timerange": str(extent)}, context, now
            )
        )
    changes.append(events.flow_event("deleted", {"flow_id": flow_id}, context, now))
    changes.extend(collectors_changed)
    if source is not None:
        tx.delete_source(source_id)
        changes.append(
            events.source_event(
                "deleted", {"source_id": source_id}, events.source_context(source), now
            )
        )
    changes.extend(source_updates(tx, members_sources, now))  # (a source deleted: none)
    return changes


def _without_computed(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k not in COMPUTED_KEYS}


def restore(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    """`POST /deleted-flows/{id}/restore`: the flow back with its segments and tags (and its
    source, if it went with it): 200 with the flow; `sources/created` and `flows/created`."""
    flow_id = command.payload["flow_id"]
    now = command.issued_at.astimezone(UTC)
    hidden = tx.get_deleted_flow(flow_id)
    if hidden is None or hidden.purge_request_id is not None:
        raise domain.not_found(f"flow {flow_id} is not soft-deleted (or is being purged)")
    if tx.get_flow(flow_id) is not None:
        raise conflict(f"a live flow {flow_id} exists")
    flow = dict(hidden.flow)
    changes: list[TamsEvent] = []
    source = tx.get_source(flow["source_id"])
    if source is not None and source["format"] != flow["format"]:
        raise conflict(
            f"source {source['id']} now has format {source['format']}, not the flow's "
            f"{flow['format']}"
        )
    members = flow.get("flow_collection")
    if members:
        # Members deleted meanwhile are left out (a collection never names a missing flow).
        kept = [m for m in members if tx.get_flow(m["id"]) is not None]
        if len(kept) != len(members):
            flow = domain.touch_flow({**flow, "flow_collection": kept}, now)
            if not kept:
                del flow["flow_collection"]
    # A restored collector changes its members' sources' `collected_by`, and its own
    # source's `source_collection` when that source stayed.
    sources = sources_touched(tx, {"source_id": flow["source_id"]}, flow)
    if source is None:
        tx.put_source(
            hidden.source
            or saved_source(tx, flow["source_id"])
            or domain.new_source(flow, now, command.principal)
        )
    tx.restore_flow(flow)
    if source is None:
        # Read back with the flow in it, so the event has its derived collections.
        created = tx.get_source(flow["source_id"])
        assert created is not None
        changes.append(
            events.source_event("created", {"source": created}, events.source_context(created), now)
        )
    restored = tx.get_flow(flow_id)
    assert restored is not None
    changes.append(
        events.flow_event("created", {"flow": restored}, events.flow_context(tx, restored), now)
    )
    changes.extend(source_updates(tx, sources, now))
    return Outcome(status=200, body=restored, events=changes)


def saved_source(tx: WriteTx, source_id: str) -> Doc | None:
    """The copy of a source kept when it was hidden with its last flow. That copy is on the
    record of the flow hidden last, which need not be the one being restored: a source's flows
    may be restored in any order. The most recent copy, if several (newest first)."""
    page = None
    while True:
        records, page = tx.list_deleted_flows(page, 100)
        for record in records:
            if record.source is not None and record.flow["source_id"] == source_id:
                return record.source
        if page is None:
            return None


class Purge:
    """`DELETE /deleted-flows/{id}`, and the worker's purge at `purge_after`: 204 when the
    flow had at most `sync_delete_limit` segments, else 202 with the deletion request whose
    chain removes the rest."""

    def __init__(self, media: MediaSettings) -> None:
        self.media = media

    def __call__(self, tx: WriteTx, command: CommandEnvelope) -> Outcome:
        flow_id = command.payload["flow_id"]
        now = command.issued_at.astimezone(UTC)
        hidden = tx.get_deleted_flow(flow_id)
        if hidden is None:
            raise domain.not_found(f"flow {flow_id} is not soft-deleted (or was purged)")
        if hidden.purge_request_id is not None:
            running = tx.get_deletion_request(hidden.purge_request_id)
            if running is not None and not running.finished:
                return _accepted(running, follow=False)
        record = deletion.new_request(
            flow_id,
            TimeRange.parse(hidden.timerange),
            delete_flow=True,
            object_id=None,
            principal=command.principal,
            now=now,
            retention_s=self.media.deletion_request_retention_s,
        )
        tx.start_purge(flow_id, record.id)
        if not deletion.purge_chunk(tx, flow_id, self.media.sync_delete_limit, now, self.media):
            tx.forget_deleted_flow(flow_id)
            return Outcome(status=204)
        tx.put_deletion_request(record)
        return _accepted(record, follow=True)


def _accepted(record: DeletionRequestRecord, *, follow: bool) -> Outcome:
    outcome = deletion.accepted(record)
    return outcome if follow else outcome.model_copy(update={"commands": []})


def finish_purge(
    tx: WriteTx, record: DeletionRequestRecord, media: MediaSettings, now: datetime
) -> Outcome:
    """The last step of a purge's chain (the catalog's `flows.delete` finish): anything
    left, then the record; the request is done."""
    retention_s = media.deletion_request_retention_s
    if deletion.purge_chunk(tx, record.flow_id, media.sync_delete_limit, now, media):
        again = deletion.advanced(record, now, retention_s, status="started")
        tx.put_deletion_request(again)
        return deletion.chain_outcome([], [deletion.step_command(again)])
    tx.forget_deleted_flow(record.flow_id)
    tx.put_deletion_request(deletion.finished(record, now, retention_s))
    return deletion.chain_outcome([])
