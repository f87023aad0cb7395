"""Catalog command handlers: one function per command, `(tx, command) -> Outcome`.

Each handler reads what it needs, applies the rules in `domain`, writes, and returns the
reply together with the TAMS events of the change. Everything happens in the transaction
the applier opened, so a rule violation leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps

from tams_catalog import domain, soft_delete
from tams_catalog.domain import CatalogError, Doc
from tams_catalog.membership import leave_collections, source_updates, sources_touched
from tams_runtime import deletion, events
from tams_runtime.settings import MediaSettings, SoftDeleteSettings
from tams_schema.envelopes import CommandEnvelope, Outcome, TamsEvent
from tams_schema.timerange import TimeRange
from tams_store import ReadTx, WriteTx
from tams_store.port import FlowQuery, SegmentRecord

Handler = Callable[[WriteTx, CommandEnvelope], Outcome]


def rules(handler: Handler) -> Handler:
    """Answer a `CatalogError` with its status and a TAMS error body."""

    @wraps(handler)
    def wrapper(tx: WriteTx, command: CommandEnvelope) -> Outcome:
        try:
            return handler(tx, command)
        except CatalogError as exc:
            return Outcome.error(exc.status, exc.type, exc.summary)

    return wrapper


def now_of(command: CommandEnvelope) -> datetime:
    # The time the gateway accepted the request, so a redelivery stamps the same time.
    return command.issued_at.astimezone(UTC)


def flow_event(tx: ReadTx, kind: str, flow: Doc, now: datetime) -> TamsEvent:
    return events.flow_event(kind, {"flow": flow}, events.flow_context(tx, flow), now)


def source_event(kind: str, source: Doc, now: datetime) -> TamsEvent:
    return events.source_event(kind, {"source": source}, events.source_context(source), now)


def require_flow(tx: WriteTx, flow_id: str) -> Doc:
    flow = tx.get_flow(flow_id)
    if flow is None:
        raise domain.not_found(f"flow {flow_id} does not exist")
    return flow


def require_source(tx: WriteTx, source_id: str) -> Doc:
    source = tx.get_source(source_id)
    if source is None:
        raise domain.not_found(f"source {source_id} does not exist")
    return source


def stored(doc: Doc) -> Doc:
    """Drop computed keys before writing a document read back from the store."""
    return {k: v for k, v in doc.items() if k not in ("collected_by", "source_collection")}


@rules
def update_service(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    """POST /service: set `name` and/or `description`."""
    info = tx.get_service_info()
    info.update({k: v for k, v in command.payload.items() if k in ("name", "description")})
    tx.set_service_info(info)
    return Outcome(status=200)


@rules
def put_flow(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    """PUT /flows/{id}: create (201 + body) or replace (204)."""
    body: Doc = command.payload["flow"]
    now = now_of(command)
    flow_id = body["id"]
    existing = tx.get_flow(flow_id)
    if existing is not None and existing.get("read_only"):
        raise domain.read_only(flow_id)
    if existing is None:
        soft_delete.refuse_hidden_id(tx, flow_id)
    elif existing["source_id"] != body["source_id"]:
        check_source_may_go(tx, command.payload, flow_id, existing["source_id"])
    profile_id = body.get("profile_id")
    profile = tx.get_profile(profile_id) if profile_id else None
    flow = domain.attribute(
        domain.prepare_flow(body, existing, profile, now), existing, command.principal
    )
    domain.check_size(flow, f"flow {flow_id}")
    check_flow_collection(tx, flow_id, flow["source_id"], flow.get("flow_collection") or [])
    changes: list[TamsEvent] = []
    sources = sources_touched(tx, existing or {"source_id": flow["source_id"]}, flow)
    source = tx.get_source(flow["source_id"])
    born = None
    if source is None:
        born = domain.new_source(flow, now, command.principal)
        tx.put_source(born)
    else:
        domain.check_source_format(flow, source)
    tx.put_flow(flow)
    if born is not None:
        if flow.get("flow_collection") or (existing and existing.get("collected_by")):
            # As it is with the flow in it: its derived collections (`source_collection` of
            # a flow that collects others, `collected_by` of a flow others collect). Else it
            # has none, and is as written (a read saved on every plain flow's new source).
            born = require_source(tx, flow["source_id"])
        changes.append(source_event("created", born, now))
    if existing is not None and existing["source_id"] != flow["source_id"]:
        changes.extend(_drop_source_if_orphaned(tx, existing["source_id"], now))
    stored_flow = require_flow(tx, flow_id)
    changes.append(flow_event(tx, "updated" if existing else "created", stored_flow, now))
    changes.extend(source_updates(tx, sources, now))
    if existing is None:
        return Outcome(status=201, body=stored_flow, events=changes)
    return Outcome(status=204, events=changes)


def check_flow_collection(tx: WriteTx, flow_id: str, source_id: str, collection: list[Doc]) -> None:
    """The members exist, once each, and agree with the source's other flows' collections."""
    members = {m["id"]: tx.get_flow(m["id"]) for m in collection}
    found = {member_id: flow for member_id, flow in members.items() if flow is not None}
    domain.check_collection(flow_id, collection, set(found))
    if not collection:
        return
    _check_not_collected_by_itself(tx, flow_id, list(found.values()))
    source_of = {member_id: flow["source_id"] for member_id, flow in found.items()}
    mine = domain.implied_source_collection(collection, source_of)
    others = {}
    for other in _flows_of_source(tx, source_id):
        if other["id"] == flow_id or not other.get("flow_collection"):
            continue
        theirs = other["flow_collection"]
        for item in theirs:
            if item["id"] not in source_of:
                member = tx.get_flow(item["id"])
                if member is not None:
                    source_of[item["id"]] = member["source_id"]
        present = [item for item in theirs if item["id"] in source_of]
        others[other["id"]] = domain.implied_source_collection(present, source_of)
    domain.check_matches_source(flow_id, source_id, mine, others)


def _check_not_collected_by_itself(tx: WriteTx, flow_id: str, members: list[Doc]) -> None:
    """No member collects `flow_id`, at any depth: a flow made of itself means nothing, and
    a walk down the collections would never end."""
    seen = {member["id"] for member in members}
    while members:
        member = members.pop()
        for item in member.get("flow_collection") or []:
            if item["id"] == flow_id:
                raise domain.bad_request(
                    f"flow {flow_id} would collect itself: flow {member['id']}, which its "
                    "collection holds, collects it"
                )
            if item["id"] not in seen:
                seen.add(item["id"])
                found = tx.get_flow(item["id"])
                if found is not None:
                    members.append(found)


def _flows_of_source(tx: WriteTx, source_id: str) -> list[Doc]:
    flows: list[Doc] = []
    page: str | None = None
    while True:
        listed = tx.list_flows(FlowQuery(source_id=source_id, page=page, limit=1000))
        flows += listed.items
        if listed.next_key is None:
            return flows
        page = listed.next_key


def check_source_may_go(tx: WriteTx, payload: Doc, flow_id: str, source_id: str) -> None:
    """A move that leaves `source_id` without flows deletes it: the gateway names the one
    source the caller may delete (`deletable_source`; absent: the caller may delete any).
    Decided here, not at the gateway: the source's other flows may have gone meanwhile."""
    if "deletable_source" not in payload or payload["deletable_source"] == source_id:
        return
    if tx.count_flows_of_source(source_id) <= 1:
        raise domain.source_not_deletable(flow_id, source_id)


def _drop_source_if_orphaned(tx: WriteTx, source_id: str, now: datetime) -> list[TamsEvent]:
    """Sources die with their last flow (ADR 0018)."""
    if tx.count_flows_of_source(source_id) > 0:
        return []
    source = tx.get_source(source_id)
    tx.delete_source(source_id)
    context = events.source_context(source or {"id": source_id})
    return [events.source_event("deleted", {"source_id": source_id}, context, now)]


class FlowDeletion:
    """DELETE /flows/{id}: at once (204) when the flow has at most `sync_delete_limit`
    segments; otherwise 202 and a deletion request whose steps the segments service runs,
    ending with this same command (with `deletion_request_id`) to remove the emptied flow.

    The flow stays readable until its last segment is gone.

    With soft delete on (`TAMS_SOFT_DELETE_RETENTION_S` > 0) the flow is hidden instead,
    whatever its size (204), and purged later through this same path (`soft_delete.py`)."""

    def __init__(self, media: MediaSettings, soft: SoftDeleteSettings | None = None) -> None:
        self.media = media
        self.retention_s = media.deletion_request_retention_s
        self.soft_retention_s = soft.retention_s if soft is not None else 0
        self._handle = rules(self._apply)

    def __call__(self, tx: WriteTx, command: CommandEnvelope) -> Outcome:
        return self._handle(tx, command)

    def _apply(self, tx: WriteTx, command: CommandEnvelope) -> Outcome:
        payload = command.payload
        if "deletion_request_id" in payload:
            return self._finish(tx, command)
        flow_id = payload["flow_id"]
        now = now_of(command)
        flow = require_flow(tx, flow_id)
        if flow.get("read_only"):
            raise domain.read_only(flow_id)
        if self.soft_retention_s > 0:
            changes = soft_delete.hide(
                tx,
                flow,
                principal=command.principal,
                now=now,
                retention_s=self.soft_retention_s,
            )
            return deletion_outcome(204, changes)
        limit = self.media.sync_delete_limit
        segments = tx.segments_within(
            flow_id, TimeRange.eternity(), object_id=None, limit=limit + 1
        )
        if len(segments) > limit:
            record = deletion.new_request(
                flow_id,
                tx.flow_timerange(flow_id),
                delete_flow=True,
                object_id=None,
                principal=command.principal,
                now=now,
                retention_s=self.retention_s,
            )
            tx.put_deletion_request(record)
            return deletion.accepted(record)
        return deletion_outcome(204, self._delete_now(tx, flow, segments, now))

    def _finish(self, tx: WriteTx, command: CommandEnvelope) -> Outcome:
        """The last step of an asynchronous flow deletion."""
        payload = command.payload
        record = tx.get_deletion_request(payload["deletion_request_id"])
        if record is None or not deletion.is_current(record, payload["step"]):
            return deletion.chain_outcome([])  # stale or repeated: already handled
        now = now_of(command)
        flow = tx.get_flow(record.flow_id)
        if flow is None and deletion.purges(tx, record):
            return soft_delete.finish_purge(tx, record, self.media, now)
        if flow is None or deletion.made_before(record, flow):
            # Gone already, or a flow created since with its id: not this request's.
            tx.put_deletion_request(deletion.finished(record, now, self.retention_s))
            return deletion.chain_outcome([])
        if flow.get("read_only"):
            tx.put_deletion_request(deletion.stopped_by_read_only(record, now, self.retention_s))
            return deletion.chain_outcome([])
        limit = self.media.sync_delete_limit
        segments = tx.segments_within(
            record.flow_id, TimeRange.eternity(), object_id=None, limit=limit + 1
        )
        if len(segments) > limit:
            # Segments were added while the deletion ran: go round again.
            again = deletion.advanced(
                record,
                now,
                self.retention_s,
                status="started",
                timerange_remaining=str(tx.flow_timerange(record.flow_id)),
            )
            tx.put_deletion_request(again)
            return deletion.chain_outcome([], [deletion.step_command(again)])
        changes = self._delete_now(tx, flow, segments, now)
        tx.put_deletion_request(deletion.finished(record, now, self.retention_s))
        return deletion_outcome(200, changes)

    def _delete_now(
        self, tx: WriteTx, flow: Doc, segments: list[SegmentRecord], now: datetime
    ) -> list[TamsEvent]:
        """The flow, its (few) segments, tags and collection links in this transaction;
        objects nothing else uses are released for garbage collection."""
        flow_id = flow["id"]
        extent = tx.flow_timerange(flow_id)
        context = events.flow_context(tx, flow)
        collectors_changed = leave_collections(tx, flow, now)
        # Its members' sources are collected by its source no more.
        members_sources = sources_touched(tx, flow, {**flow, "flow_collection": []})
        tx.delete_flow(flow_id)
        deletion.release_objects(tx, [s.object_id for s in segments], now, self.media, flow)
        # The flow's last events follow its segment events in time, as in order.
        changed_at = deletion.segments_change_time(flow, now)
        changes = []
        if not extent.is_empty:
            changes.append(
                events.flow_event(
                    "segments_deleted",
                    {"flow_id": flow_id, "timerange": str(extent)},
                    context,
                    changed_at,
                )
            )
        changes.append(events.flow_event("deleted", {"flow_id": flow_id}, context, changed_at))
        changes.extend(collectors_changed)
        # Its own source first: deleted if orphaned, it is not announced as updated before.
        changes.extend(_drop_source_if_orphaned(tx, flow["source_id"], now))
        changes.extend(source_updates(tx, members_sources, now))
        return changes


def deletion_outcome(status: int, changes: list[TamsEvent]) -> Outcome:
    """A flow's deletion: its `segments_deleted` and `deleted`, its source's `sources/deleted`
    and its collectors' `flows/updated` (relayed like every catalog event, `handlers`)."""
    return Outcome(status=status, events=changes)


def _flow_change(tx: WriteTx, command: CommandEnvelope, updated: Doc) -> Outcome:
    now = now_of(command)
    sources = sources_touched(tx, require_flow(tx, updated["id"]), updated)
    flow = stored(domain.attribute(updated, updated, command.principal))
    domain.check_size(flow, f"flow {flow['id']}")
    tx.put_flow(flow)
    changes = [flow_event(tx, "updated", require_flow(tx, updated["id"]), now)]
    changes.extend(source_updates(tx, sources, now))
    return Outcome(status=204, events=changes)


@rules
def set_flow_property(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    flow = require_flow(tx, command.payload["flow_id"])
    name, value = command.payload["name"], command.payload["value"]
    if name == "flow_collection":
        check_flow_collection(tx, flow["id"], flow["source_id"], value)
    updated = domain.set_flow_property(flow, name, value, now_of(command))
    return _flow_change(tx, command, updated)


@rules
def delete_flow_property(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    flow = require_flow(tx, command.payload["flow_id"])
    updated = domain.delete_flow_property(flow, command.payload["name"], now_of(command))
    if updated is None:
        return Outcome(status=204)
    return _flow_change(tx, command, updated)


@rules
def set_flow_tag(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    flow = require_flow(tx, command.payload["flow_id"])
    if flow.get("read_only"):
        raise domain.read_only(flow["id"])
    tagged = domain.set_tag(flow, command.payload["name"], command.payload["value"])
    return _flow_change(tx, command, domain.touch_flow(tagged, now_of(command)))


@rules
def delete_flow_tag(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    flow = require_flow(tx, command.payload["flow_id"])
    if flow.get("read_only"):
        raise domain.read_only(flow["id"])
    untagged = domain.delete_tag(flow, command.payload["name"], "flow")
    return _flow_change(tx, command, domain.touch_flow(untagged, now_of(command)))


def _source_change(tx: WriteTx, command: CommandEnvelope, updated: Doc) -> Outcome:
    now = now_of(command)
    attributed = domain.attribute(updated, updated, command.principal)
    source = stored(domain.touch_source(attributed, now))
    domain.check_size(source, f"source {source['id']}")
    tx.put_source(source)
    source = require_source(tx, updated["id"])
    return Outcome(status=204, events=[source_event("updated", source, now)])


@rules
def set_source_property(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    source = require_source(tx, command.payload["source_id"])
    return _source_change(
        tx, command, {**source, command.payload["name"]: command.payload["value"]}
    )


@rules
def delete_source_property(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    source = require_source(tx, command.payload["source_id"])
    name = command.payload["name"]
    if name not in source:
        # Nothing to delete, so nothing changes; the spec lists no error for it.
        return Outcome(status=204)
    return _source_change(tx, command, {k: v for k, v in source.items() if k != name})


@rules
def set_source_tag(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    source = require_source(tx, command.payload["source_id"])
    tagged = domain.set_tag(source, command.payload["name"], command.payload["value"])
    return _source_change(tx, command, tagged)


@rules
def delete_source_tag(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    source = require_source(tx, command.payload["source_id"])
    return _source_change(tx, command, domain.delete_tag(source, command.payload["name"], "source"))


@rules
def create_profile(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    """POST /service/profiles/{id}: profiles are immutable, so an existing id is a 400."""
    profile: Doc = dict(command.payload["profile"])
    if tx.get_profile(profile["id"]) is not None:
        raise domain.bad_request(f"profile {profile['id']} already exists; profiles are immutable")
    profile["created"] = domain.timestamp(now_of(command))
    if command.principal:
        # The authenticated caller, whatever the body says (as for flows and sources).
        profile["created_by"] = command.principal
    tx.put_profile(profile)
    return Outcome(status=201, body=tx.get_profile(profile["id"]))


HANDLERS: dict[str, Handler] = {
    "service.update": update_service,
    "flows.put": put_flow,
    "flows.property.set": set_flow_property,
    "flows.property.delete": delete_flow_property,
    "flows.tag.set": set_flow_tag,
    "flows.tag.delete": delete_flow_tag,
    "sources.property.set": set_source_property,
    "sources.property.delete": delete_source_property,
    "sources.tag.set": set_source_tag,
    "sources.tag.delete": delete_source_tag,
    "profiles.create": create_profile,
}


def handlers(media: MediaSettings, soft: SoftDeleteSettings | None = None) -> dict[str, Handler]:
    """Every catalog command handler; flow deletion needs the deletion settings (and the
    soft-delete retention, docs/ext-soft-delete.md). Each hands its events to the segments
    service to publish (`events.relay_events`): one publisher per flow keeps a flow's events
    in order."""
    every: dict[str, Handler] = {
        **HANDLERS,
        deletion.FINISH_FLOW_COMMAND: FlowDeletion(media, soft),
        deletion.RESTORE_COMMAND: rules(soft_delete.restore),
        deletion.PURGE_COMMAND: rules(soft_delete.Purge(media)),
    }
    return {name: Relaying(handler) for name, handler in every.items()}


class Relaying:
    """A handler whose outcome's events go to the segments service as `events.relay`
    follow-ups, in the transaction that records the outcome (a redelivered command sends the
    same relays again). The applier's optional hooks are the wrapped handler's."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.prepare = getattr(handler, "prepare", None)
        self.committed = getattr(handler, "committed", None)

    def __call__(self, tx: WriteTx, command: CommandEnvelope) -> Outcome:
        return events.relay_events(self.handler(tx, command))
