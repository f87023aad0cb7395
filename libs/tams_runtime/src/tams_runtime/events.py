"""Building TAMS events with their routing context, the same way in every service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tams_schema.auth import auth_classes_of
from tams_schema.envelopes import CommandEnvelope, EventContext, FollowUp, Outcome, TamsEvent
from tams_store import ReadTx

Doc = dict[str, Any]


def flow_context(tx: ReadTx, flow: Doc) -> EventContext:
    """A flow's source, collectors and auth classes, as they are now (call before deleting
    the flow)."""
    source = tx.source_routing(flow["source_id"])
    return EventContext(
        flow_id=flow["id"],
        source_id=flow["source_id"],
        flow_collected_by=list(flow.get("collected_by") or []),
        source_collected_by=list((source or {}).get("collected_by") or []),
        flow_auth_classes=list(auth_classes_of(flow.get("tags"))),
        source_auth_classes=list(auth_classes_of((source or {}).get("tags"))),
    )


def source_context(source: Doc) -> EventContext:
    return EventContext(
        source_id=source["id"],
        source_collected_by=list(source.get("collected_by") or []),
        source_auth_classes=list(auth_classes_of(source.get("tags"))),
    )


def flow_event(kind: str, event: Doc, context: EventContext, now: datetime) -> TamsEvent:
    """A `flows/*` event, keyed by the flow id."""
    assert context.flow_id is not None
    return TamsEvent(
        key=context.flow_id,
        event_type=f"flows/{kind}",
        event_timestamp=now,
        event=event,
        context=context,
    )


def source_event(kind: str, event: Doc, context: EventContext, now: datetime) -> TamsEvent:
    """A `sources/*` event, keyed by the source id."""
    assert context.source_id is not None
    return TamsEvent(
        key=context.source_id,
        event_type=f"sources/{kind}",
        event_timestamp=now,
        event=event,
        context=context,
    )


# The segments service's command that publishes events another service made (`relayed`).
RELAY_COMMAND = "events.relay"


def relayed(flow_id: str, events: list[TamsEvent]) -> FollowUp:
    """`events` (a flow's deletion) for the segments service to publish, keyed by the flow.

    Events about one flow come from two services: the segments service announces its
    segments, the catalog the flow. Each service publishes in the order it applies, but the
    catalog's `flows/deleted` could overtake a `flows/segments_added` the segments service
    had committed and not yet published. Published by the segments service instead, after
    everything it applied before (this command reaches it only once the catalog has seen
    those segments), the deletion's events come last, as docs/events.md promises. The
    events keep the ids the catalog's recorded outcome gave them."""
    return FollowUp(
        service="segments",
        command=CommandEnvelope(
            name=RELAY_COMMAND,
            key=flow_id,
            payload={"events": [event.model_dump(mode="json") for event in events]},
        ),
    )


def relay(_tx: object, command: CommandEnvelope) -> Outcome:
    """The segments service's handler of `events.relay`: publish them, change nothing."""
    events = [TamsEvent.model_validate(event) for event in command.payload["events"]]
    return Outcome(status=200, events=events)
