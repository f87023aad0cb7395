"""The JSON body a webhook receives for an event.

Every event is delivered exactly as published (`{event_timestamp, event_type, event}`), except
`flows/segments_added`: its segments get their `get_urls`, signed at delivery time from the
store's object records and shaped by the webhook's URL options (`accept_get_urls`,
`accept_storage_ids`, `presigned`, `verbose_storage`, `include_object_timerange`) exactly as
a segments GET with the same query parameters would show them. The events on Kafka carry no
URLs because presigned URLs expire.

One event usually goes to many webhooks, so each rendered body is cached on the event for
the webhooks that share the same options; URLs are signed for one-minute windows
(tams_runtime.s3), so a body younger than `BODY_REUSE_S` holds URLs as fresh as new ones.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from tams_runtime.media import UrlBuilder, UrlFilter, event_object_ids, event_segment_view
from tams_store.port import Doc, ObjectRecord

SEGMENTS_ADDED = "flows/segments_added"
BODY_REUSE_S = 30.0
URL_OPTIONS = (
    "accept_get_urls",
    "accept_storage_ids",
    "presigned",
    "verbose_storage",
    "include_object_timerange",
)
OptionsKey = tuple[Any, ...]


@dataclass(eq=False)
class EventBody:
    """One queued event in memory, shared by every webhook it goes to."""

    event_id: str
    payload: Doc
    # W3C trace headers of the change that caused the event (in memory only: a delivery
    # read back from the store after a restart starts a trace of its own).
    trace_context: dict[str, str] = field(default_factory=dict)
    # For flows/segments_added: the records of its objects (None until read).
    objects: dict[str, ObjectRecord] | None = None
    _bodies: dict[OptionsKey, tuple[float, bytes]] = field(default_factory=dict)

    @property
    def event_type(self) -> str:
        return str(self.payload.get("event_type"))

    @property
    def order_key(self) -> str:
        """What its receiver gets in order: the events of one flow, or of one source (their
        key on Kafka too). Events of different keys may be delivered at the same time."""
        event = self.payload.get("event")
        if isinstance(event, dict):
            for kind in ("flow", "source"):
                subject = event.get(kind)
                subject_id = subject.get("id") if isinstance(subject, dict) else None
                subject_id = subject_id or event.get(f"{kind}_id")
                if isinstance(subject_id, str):
                    return f"{kind}:{subject_id}"
        return ""  # not about one flow or source: in order with the others like it

    def object_ids(self) -> list[str]:
        if self.event_type != SEGMENTS_ADDED:
            return []
        return sorted(event_object_ids(self.payload["event"]["segments"]))


def options_key(webhook: Doc) -> OptionsKey:
    return tuple(
        tuple(v) if isinstance(v := webhook.get(name), list) else v for name in URL_OPTIONS
    )


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Payloads:
    def __init__(self, urls: UrlBuilder) -> None:
        self.urls = urls

    def body(
        self,
        webhook: Doc,
        options: OptionsKey,
        event: EventBody,
        readable_storage_ids: frozenset[str] | None = None,
    ) -> bytes:
        """The body for this webhook (`options`: `options_key(webhook)` and, when they are
        limited, the backends its owner may read); a segments_added event needs
        `event.objects` read."""
        key: OptionsKey = options if event.event_type == SEGMENTS_ADDED else ()
        now = time.monotonic()
        cached = event._bodies.get(key)
        if cached is not None and now - cached[0] < BODY_REUSE_S:
            return cached[1]
        body = _dumps(self._render(webhook, event, readable_storage_ids))
        event._bodies[key] = (now, body)
        return body

    def _render(
        self, webhook: Doc, event: EventBody, readable_storage_ids: frozenset[str] | None
    ) -> Doc:
        if event.event_type != SEGMENTS_ADDED:
            return event.payload
        filters = UrlFilter(
            readable_storage_ids=readable_storage_ids,
            accept_get_urls=webhook.get("accept_get_urls"),
            # Empty means no filter, as for the query parameter (checklist §0 "UF").
            accept_storage_ids=webhook.get("accept_storage_ids") or None,
            presigned=webhook.get("presigned"),
            verbose_storage=bool(webhook.get("verbose_storage")),
        )
        objects = event.objects or {}
        added = event.payload["event"]
        segments = [
            event_segment_view(
                segment,
                objects,
                urls=self.urls,
                filters=filters,
                include_object_timerange=bool(webhook.get("include_object_timerange")),
            )
            for segment in added["segments"]
        ]
        return {**event.payload, "event": {**added, "segments": segments}}
