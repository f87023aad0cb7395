"""Building TAMS events with their routing context, the same way in every service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tams_schema.auth import auth_classes_of
from tams_schema.envelopes import EventContext, TamsEvent
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
