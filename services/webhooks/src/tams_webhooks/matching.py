"""Which events a webhook wants: its event types and filters, ANDed (checklist §5.1).

* `flow_ids` (flow and segment events): the flow is listed.
* `source_ids` (flow, segment and source events): the (flow's) source is listed.
* `flow_collected_by_ids` (flow and segment events): a listed flow collects the flow;
  `[]`: nothing collects it.
* `source_collected_by_ids` (flow, segment and source events): a listed source collects the
  (flow's) source; `[]`: nothing collects it.

An absent filter keeps everything. The facts the payloads lack (a flow's source, who collects
the flow and its source when the event happened) come from the event's routing context
(Kafka headers, `EventContext`); for events published without it they are taken from the
payload where it has them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tams_schema.envelopes import EventContext, TamsEvent


def _ids(doc: dict[str, Any], name: str) -> frozenset[str] | None:
    values = doc.get(name)
    return None if values is None else frozenset(values)


def _collected(collectors: Iterable[str], wanted: frozenset[str]) -> bool:
    found = set(collectors)
    return not found if not wanted else bool(found & wanted)


def context_of(event: TamsEvent) -> EventContext:
    """The event's routing context, completed from its payload where the headers were absent."""
    context = event.context
    if context.flow_id is not None or context.source_id is not None:
        return context
    body = event.event
    flow = body.get("flow") if isinstance(body.get("flow"), dict) else None
    source = body.get("source") if isinstance(body.get("source"), dict) else None
    if event.event_type.startswith("flows/"):
        return EventContext(
            flow_id=(flow or {}).get("id") or body.get("flow_id"),
            source_id=(flow or {}).get("source_id"),
            flow_collected_by=list((flow or {}).get("collected_by") or []),
        )
    return EventContext(
        source_id=(source or {}).get("id") or body.get("source_id"),
        source_collected_by=list((source or {}).get("collected_by") or []),
    )


@dataclass(frozen=True)
class Subscription:
    events: frozenset[str]
    flow_ids: frozenset[str] | None = None
    source_ids: frozenset[str] | None = None
    flow_collected_by_ids: frozenset[str] | None = None
    source_collected_by_ids: frozenset[str] | None = None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Subscription:
        """From a registration document (`WebhookRecord.doc`)."""
        return cls(
            events=frozenset(doc.get("events") or ()),
            flow_ids=_ids(doc, "flow_ids"),
            source_ids=_ids(doc, "source_ids"),
            flow_collected_by_ids=_ids(doc, "flow_collected_by_ids"),
            source_collected_by_ids=_ids(doc, "source_collected_by_ids"),
        )

    def wants(self, event: TamsEvent) -> bool:
        if event.event_type not in self.events:
            return False
        context = context_of(event)
        if event.event_type.startswith("flows/"):
            if self.flow_ids is not None and context.flow_id not in self.flow_ids:
                return False
            if self.flow_collected_by_ids is not None and not _collected(
                context.flow_collected_by, self.flow_collected_by_ids
            ):
                return False
        if self.source_ids is not None and context.source_id not in self.source_ids:
            return False
        return self.source_collected_by_ids is None or _collected(
            context.source_collected_by, self.source_collected_by_ids
        )
