"""What `applier.unpublishable` lets through fits a Kafka message as it is sent: in bytes,
with the headers the consumer adds (a client's trace context among them)."""

from __future__ import annotations

import uuid

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.span import TraceState
from pydantic_core import to_json

from tams_runtime.applier import unpublishable
from tams_runtime.events import relayed
from tams_runtime.message_size import MAX_MESSAGE_BYTES, MESSAGE_OVERHEAD_BYTES
from tams_runtime.tracing import kafka_trace_headers
from tams_schema.envelopes import EventContext, Outcome, TamsEvent

# The broker's default `message.max.bytes`: a record batch of one record at most this large.
BROKER_MAX_BYTES = 1024 * 1024 + 12
LIMIT = MAX_MESSAGE_BYTES - MESSAGE_OVERHEAD_BYTES


def test_a_follow_up_is_measured_in_bytes() -> None:
    """A relay of text outside ASCII: fewer characters than the limit, more bytes."""
    key = str(uuid.uuid4())
    text = "\u6620" * (LIMIT // 2)  # 3 bytes each in UTF-8
    event = TamsEvent(key=key, event_type="flows/updated", event={"description": text})
    relay = relayed(key, [event])
    assert len(relay.command.model_dump_json()) < LIMIT
    assert unpublishable(Outcome(status=200, commands=[relay])) is not None


def test_an_accepted_event_fits_with_a_clients_largest_trace_state() -> None:
    key = str(uuid.uuid4())
    context = EventContext(flow_id=key, source_id=key)

    def event(size: int) -> TamsEvent:
        return TamsEvent(
            key=key, event_type="flows/updated", event={"x": "y" * size}, context=context
        )

    # The largest event accepted (a counted size exactly at the limit).
    empty = event(0)
    counted = len(key) + len(to_json(empty.payload()))
    counted += sum(len(n) + len(v) for n, v in context.headers())
    largest = event(LIMIT - counted)
    assert unpublishable(Outcome(status=200, events=[largest])) is None
    assert unpublishable(Outcome(status=200, events=[event(LIMIT - counted + 1)])) is not None
    # A request's `tracestate` is continued by the command's span (OpenTelemetry takes up
    # to 8,192 characters of it), and sent with each of its events.
    state = TraceState([(f"k{i:02d}vendor-x", "v" * 240) for i in range(32)])
    span = NonRecordingSpan(SpanContext(1, 2, False, TraceFlags(1), state))
    headers = [
        ("event_id", largest.event_id.encode()),
        ("event_type", largest.event_type.encode()),
        ("schema_version", b"1"),
        *context.headers(),
        *kafka_trace_headers(trace.set_span_in_context(span)),
    ]
    batch = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=2**31,
    )
    batch.append(
        0, timestamp=None, key=key.encode(), value=to_json(largest.payload()), headers=headers
    )
    assert len(batch.build()) <= BROKER_MAX_BYTES
