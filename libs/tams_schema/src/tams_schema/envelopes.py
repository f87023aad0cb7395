"""What travels on the internal Kafka topics: commands, their replies, and TAMS events.

A command is a request to change state, addressed to the service that owns it and keyed by
the flow (or source) it touches, so one partition, and so one consumer, applies all commands
for that flow in order. Its reply carries the HTTP outcome the owning service decided, so the
gateway stays a thin edge. Events are the TAMS webhook payloads, each with an id so that
consumers can drop a redelivered copy.

Every envelope ignores fields it does not know (a tolerant reader), as does a recorded
outcome read back: during a rolling upgrade, or after a rollback, older and newer services
read each other's messages, and a field a newer release adds must not make an older one
skip a command or fail to read a reply (docs/operations.md, "Upgrades").
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from tams_schema.models.common import EventType


def new_id() -> str:
    """A random (version 4) UUID string, as `str(uuid.uuid4())` gives, in a third of its time:
    several are made per request and per command."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def utc_now() -> datetime:
    return datetime.now(UTC)


class CommandEnvelope(BaseModel):
    """One command for an owning service.

    `command_id` identifies the command itself (a redelivery carries the same id and is
    answered from the recorded outcome); `correlation_id` ties the reply to the waiting
    request; `reply_to` is the address of the requesting gateway's reply listener.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    command_id: str = Field(default_factory=new_id)
    correlation_id: str = Field(default_factory=new_id)
    reply_to: str | None = None
    name: str
    key: str
    issued_at: datetime = Field(default_factory=utc_now)
    principal: str | None = None
    trace_context: dict[str, str] = Field(default_factory=dict)
    payload: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """The TAMS error object (`schemas/error.json`), used for every 4xx/5xx body."""

    model_config = ConfigDict(extra="ignore")

    type: str
    summary: str
    time: datetime = Field(default_factory=utc_now)
    traceback: list[str] | None = None

    def as_json(self) -> dict[str, Any]:
        """The body as sent: members not set are left out (error.json allows no nulls)."""
        return self.model_dump(mode="json", exclude_none=True)


def with_message(body: object) -> object:
    """An error body as sent: the TAMS error object plus `message`, a copy of `summary`.

    error.json allows members beyond `type`, `summary` and `time`; the AWS TAMS tools (web UI
    alerts, sqs-segment-ingestion's "already exist" check on `POST /flows/{id}/storage`) read
    `message`, which is what the AWS store sends."""
    if isinstance(body, dict) and isinstance(body.get("summary"), str) and "message" not in body:
        return {**body, "message": body["summary"]}
    return body


class Reply(BaseModel):
    """The owning service's answer: an HTTP status, optional headers and a JSON body."""

    model_config = ConfigDict(extra="ignore")

    command_id: str
    correlation_id: str
    status: int
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None


class EventContext(BaseModel):
    """Facts about an event's subject at the time of the change that its payload lacks.

    Webhook filters (`source_ids`, `flow_collected_by_ids`, `source_collected_by_ids`) need
    a flow's source and who collects the flow and its source, also for `flows/deleted` and
    `flows/segments_*` events whose payload names only the flow. They travel as headers.
    """

    model_config = ConfigDict(extra="ignore")

    flow_id: str | None = None
    source_id: str | None = None
    flow_collected_by: list[str] = Field(default_factory=list)
    source_collected_by: list[str] = Field(default_factory=list)
    # The `auth_classes` of the flow and of the source when the event happened (fine-grained
    # authorisation of webhook deliveries: a deleted flow cannot be looked up any more).
    # None: not known (an event published without them); []: unclassified.
    flow_auth_classes: list[str] | None = None
    source_auth_classes: list[str] | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        headers: list[tuple[str, bytes]] = []
        if self.flow_id is not None:
            headers.append(("tams-flow-id", self.flow_id.encode()))
            headers.append(("tams-flow-collected-by", ",".join(self.flow_collected_by).encode()))
            if self.flow_auth_classes is not None:
                headers.append(
                    ("tams-flow-auth-classes", json.dumps(self.flow_auth_classes).encode())
                )
        if self.source_id is not None:
            headers.append(("tams-source-id", self.source_id.encode()))
            headers.append(
                ("tams-source-collected-by", ",".join(self.source_collected_by).encode())
            )
            if self.source_auth_classes is not None:
                headers.append(
                    ("tams-source-auth-classes", json.dumps(self.source_auth_classes).encode())
                )
        return headers

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> EventContext:
        def ids(name: str) -> list[str]:
            value = headers.get(name, "")
            return value.split(",") if value else []

        def classes(name: str) -> list[str] | None:
            value = headers.get(name)
            if value is None:
                return None
            try:
                parsed = json.loads(value)
            except ValueError:
                return None
            if not isinstance(parsed, list):
                return None
            return [str(item) for item in parsed]

        return cls(
            flow_id=headers.get("tams-flow-id"),
            source_id=headers.get("tams-source-id"),
            flow_collected_by=ids("tams-flow-collected-by"),
            source_collected_by=ids("tams-source-collected-by"),
            flow_auth_classes=classes("tams-flow-auth-classes"),
            source_auth_classes=classes("tams-source-auth-classes"),
        )


class TamsEvent(BaseModel):
    """A TAMS event exactly as the spec's webhook payload, plus its id and routing key.

    On the public events topic the Kafka value is the payload (`event_timestamp`,
    `event_type`, `event`); `event_id`, the schema version, the trace context and the
    `context` travel in headers so the value stays the spec's shape.
    """

    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(default_factory=new_id)
    key: str
    event_type: str
    event_timestamp: datetime = Field(default_factory=utc_now)
    event: dict[str, Any]
    context: EventContext = Field(default_factory=EventContext)

    def payload(self) -> dict[str, Any]:
        return {
            "event_timestamp": self.event_timestamp.isoformat().replace("+00:00", "Z"),
            "event_type": self.event_type,
            "event": self.event,
        }


OwningService = Literal["catalog", "segments", "webhooks"]


class FollowUp(BaseModel):
    """A command that applying another command asks for, addressed to an owning service.

    Work too big for one transaction (deleting a million segments) runs as a chain of
    commands: each step's outcome names the next step, and the consumer publishes it with
    the events, before committing the step's offset. The follow-up's command id is fixed in
    the recorded outcome, so a redelivered step re-publishes the *same* command, which is
    then answered from its own recorded outcome rather than applied twice.
    """

    model_config = ConfigDict(extra="ignore")

    service: OwningService
    command: CommandEnvelope


class Outcome(BaseModel):
    """What applying one command produced: the reply, the events and any follow-up commands
    to publish.

    Stored with the command id in the same transaction as the change, so a redelivered
    command is answered, and its events and follow-ups re-published, without being applied
    twice.
    """

    model_config = ConfigDict(extra="ignore")

    status: int
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    events: list[TamsEvent] = Field(default_factory=list)
    commands: list[FollowUp] = Field(default_factory=list)

    @classmethod
    def error(cls, status: int, type_: str, summary: str) -> Outcome:
        """A refusal: `status` with a TAMS error body."""
        return cls(status=status, body=ErrorBody(type=type_, summary=summary).as_json())

    def reply_for(self, command: CommandEnvelope) -> Reply:
        return Reply(
            command_id=command.command_id,
            correlation_id=command.correlation_id,
            status=self.status,
            headers=self.headers,
            body=self.body,
        )


EVENT_SCHEMA_VERSION = 1

# The eight TAMS event types, in the spec's order (the models' `EventType` literal).
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
