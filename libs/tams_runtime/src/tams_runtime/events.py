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


def relayed(key: str, events: list[TamsEvent]) -> FollowUp:
    """`events`, all with this key, for the segments service to publish (`relay`)."""
    return FollowUp(
        service="segments",
        command=CommandEnvelope(
            name=RELAY_COMMAND,
            key=key,
            payload={"events": [event.model_dump(mode="json") for event in events]},
        ),
    )


def relay_events(outcome: Outcome) -> Outcome:
    """The outcome with its events handed to the segments service to publish: one
    `events.relay` follow-up per key, in their order, after its other follow-ups.

    Every event of a flow is then published by one service, in the order of the flow's
    partition of the segments topic. Events about a flow are made by two services (the
    catalog the flow, the segments service its segments), and each would publish in the
    order it applies; but a `flows/deleted` could then overtake a `flows/segments_added` the
    segments service had committed and not yet published, and a flow deleted and created
    again with the same id could have its new `flows/created` before the old `flows/deleted`.
    A relay reaches the segments service after everything the catalog sent it before, and
    after the commands gateways sent it before the catalog applied its change. A source's
    events go the same way under the source's id. The events keep the ids the recorded
    outcome gave them, so a redelivered command re-publishes the same ones."""
    if not outcome.events:
        return outcome
    by_key: dict[str, list[TamsEvent]] = {}
    for event in outcome.events:
        by_key.setdefault(event.key, []).append(event)
    relays = [relayed(key, events) for key, events in by_key.items()]
    return outcome.model_copy(update={"events": [], "commands": [*outcome.commands, *relays]})


class Relay:
    """The segments service's handler of `events.relay`: publish them, change nothing."""

    # Nothing to remember: the outcome is the command's own payload, so a redelivered relay
    # publishes the same events (the same ids) again. Saves a store write per catalog change.
    records_outcome = False

    def __call__(self, _tx: object, command: CommandEnvelope) -> Outcome:
        events = [TamsEvent.model_validate(event) for event in command.payload["events"]]
        return Outcome(status=200, events=events)
