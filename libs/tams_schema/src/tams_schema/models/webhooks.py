"""Webhook registrations and the eight event payloads they deliver."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tams_schema.models.common import DateTime, Error, EventType, Tags, TamsModel, Uuid
from tams_schema.models.flows import Flow, Source
from tams_schema.models.media import FlowSegment
from tams_schema.timerange import TimeRangeField


class Webhook(TamsModel):
    url: str
    events: list[EventType]
    api_key_name: str | None = None
    flow_ids: list[Uuid] | None = None
    source_ids: list[Uuid] | None = None
    flow_collected_by_ids: list[Uuid] | None = None
    source_collected_by_ids: list[Uuid] | None = None
    accept_get_urls: list[str] | None = None
    accept_storage_ids: list[Uuid] | None = None
    presigned: bool | None = None
    verbose_storage: bool | None = None
    include_object_timerange: bool | None = None
    tags: Tags | None = None


# This server's one addition to a webhook (docs/webhooks.md, signed deliveries).
SigningSecret = Annotated[
    str | None,
    Field(
        description=(
            "Extension: sign every delivery with the Standard Webhooks scheme "
            "(`webhook-id`, `webhook-timestamp`, `webhook-signature` headers) under this "
            "secret, `whsec_` and the base64 of 24 to 64 random bytes. Write-only; a PUT "
            'without it keeps the stored one, `""` stops signing.'
        )
    ),
]


class WebhookPost(Webhook):
    """POST body: `api_key_value` and `signing_secret` are write-only, never returned."""

    api_key_value: str | None = None
    status: Literal["created", "disabled"] | None = None
    signing_secret: SigningSecret = None


class WebhookPut(Webhook):
    id: Uuid
    api_key_value: str | None = None
    status: Literal["created", "disabled"]
    signing_secret: SigningSecret = None


class WebhookGet(Webhook):
    id: Uuid
    status: Literal["created", "started", "disabled", "error"]
    error: Error | None = None


class FlowEvent(TamsModel):
    flow: Flow


class FlowIdEvent(TamsModel):
    flow_id: Uuid


class SegmentsAddedEvent(TamsModel):
    flow_id: Uuid
    segments: list[FlowSegment]


class SegmentsDeletedEvent(TamsModel):
    flow_id: Uuid
    timerange: TimeRangeField


class SourceEvent(TamsModel):
    source: Source


class SourceIdEvent(TamsModel):
    source_id: Uuid


class _Notification(TamsModel):
    event_timestamp: DateTime


class FlowCreated(_Notification):
    event_type: Literal["flows/created"]
    event: FlowEvent


class FlowUpdated(_Notification):
    event_type: Literal["flows/updated"]
    event: FlowEvent


class FlowDeleted(_Notification):
    event_type: Literal["flows/deleted"]
    event: FlowIdEvent


class FlowSegmentsAdded(_Notification):
    event_type: Literal["flows/segments_added"]
    event: SegmentsAddedEvent


class FlowSegmentsDeleted(_Notification):
    event_type: Literal["flows/segments_deleted"]
    event: SegmentsDeletedEvent


class SourceCreated(_Notification):
    event_type: Literal["sources/created"]
    event: SourceEvent


class SourceUpdated(_Notification):
    event_type: Literal["sources/updated"]
    event: SourceEvent


class SourceDeleted(_Notification):
    event_type: Literal["sources/deleted"]
    event: SourceIdEvent


Notification = Annotated[
    FlowCreated
    | FlowUpdated
    | FlowDeleted
    | FlowSegmentsAdded
    | FlowSegmentsDeleted
    | SourceCreated
    | SourceUpdated
    | SourceDeleted,
    Field(discriminator="event_type"),
]
