"""The public event stream as a contract: one declaration, from which the AsyncAPI document
is generated (FastStream builds it from the publisher and the payload models).

The services publish with plain aiokafka (`consumer.EventPublisher`) because the command
consumer batches its sends; the topic name, the key, the headers and the payload models
declared here are the ones it uses, and the tests hold both to this declaration.
"""

from __future__ import annotations

import json
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import RootModel

from tams_runtime.settings import KafkaSettings
from tams_schema.envelopes import EVENT_SCHEMA_VERSION, EVENT_TYPES
from tams_schema.models.webhooks import Notification

# Headers of every event, and what they mean (the value is the TAMS payload, nothing more).
EVENT_HEADERS: dict[str, str] = {
    "event_id": "UUID of this event; a redelivered copy carries the same id (deduplicate on it)",
    "event_type": "the payload's event_type, for filtering without parsing the value",
    "schema_version": f"version of this contract (now {EVENT_SCHEMA_VERSION}); removing or "
    "renaming a field makes a new version, adding fields does not",
    "traceparent": "W3C trace context of the change that caused the event, when traced",
    "tams-flow-id": "flows/* events: the flow",
    "tams-source-id": "the flow's source (flows/*) or the source (sources/*)",
    "tams-flow-collected-by": "flows/* events: comma-separated ids of flows collecting the flow",
    "tams-source-collected-by": "comma-separated ids of sources collecting the source",
    "tams-flow-auth-classes": "flows/* events: the flow's auth_classes tag when the event "
    "happened, as a JSON array ([] when it has none)",
    "tams-source-auth-classes": "the (flow's) source's auth_classes tag when the event happened, "
    "as a JSON array ([] when it has none)",
}

DESCRIPTION = (
    "TAMS events as the TAMS 8.2 webhook payloads (`event_timestamp`, `event_type`, `event`). "
    "Key: the flow id for flows/* events, the source id for sources/* events, so one flow's "
    "events keep their order. At least once: deduplicate on the `event_id` header. Segments in "
    "flows/segments_added carry no get_urls (presigned URLs would expire in the topic); ask the "
    "TAMS API for them. Headers: "
    + "; ".join(f"`{name}`: {meaning}" for name, meaning in EVENT_HEADERS.items())
    + ". Event types: "
    + ", ".join(EVENT_TYPES)
    + "."
)


class TamsEventMessage(RootModel[Notification]):
    """One TAMS event: the webhook payload of one of the eight event types."""


def event_stream_broker(settings: KafkaSettings | None = None) -> KafkaBroker:
    """A FastStream broker declaring the public events topic and its messages."""
    settings = settings or KafkaSettings()
    broker = KafkaBroker(settings.bootstrap_servers, description="TAMS event stream")
    broker.publisher(
        settings.topics.events,
        title=settings.topics.events,
        description=DESCRIPTION,
        schema=TamsEventMessage,
    )
    return broker


def asyncapi_document(settings: KafkaSettings | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the public event stream, as JSON-ready data."""
    spec = AsyncAPI(
        event_stream_broker(settings),
        title="TAMS event stream",
        version=str(EVENT_SCHEMA_VERSION),
        description=DESCRIPTION,
        schema_version="3.0.0",
    ).to_specification()
    document: dict[str, Any] = json.loads(spec.to_json())
    for message in document.get("components", {}).get("messages", {}).values():
        # FastStream assumes a correlation_id header; events have `event_id` instead.
        message.pop("correlationId", None)
    return document
