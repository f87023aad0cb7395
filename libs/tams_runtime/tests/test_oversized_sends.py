"""An event too large for a Kafka message is dropped with an error, not retried: a retry
cannot help, and it would hold every later change of the partition. Over the real broker.
The command that would make one is refused before its change is committed."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from tams_runtime.applier import CommandApplier
from tams_runtime.bus import ensure_topics
from tams_runtime.consumer import EventPublisher
from tams_runtime.message_size import MAX_MESSAGE_BYTES, MESSAGE_OVERHEAD_BYTES
from tams_schema.envelopes import CommandEnvelope, Outcome, TamsEvent
from tams_stack.stack import Stack
from tams_store import StoreUnavailable
from tams_store.sqlite import SqliteStore

from .test_command_bus import unique_settings


async def test_an_oversized_event_is_dropped_and_the_next_goes(
    tams_infra: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        events = EventPublisher(producer, settings.topics.events)
        huge = TamsEvent(key="flow-1", event_type="flows/updated", event={"x": "y" * 2_000_000})
        small = TamsEvent(key="flow-1", event_type="flows/updated", event={"x": "y"})
        with caplog.at_level(logging.ERROR):
            sends = await events.send([huge, small])
        assert len(sends) == 1
        await sends[0]
        assert any(huge.event_id == getattr(r, "event_id", None) for r in caplog.records)
    finally:
        await producer.stop()


class Setter:
    """Writes the command's `value` to the service info and publishes it in an event."""

    def __call__(self, tx: Any, command: CommandEnvelope) -> Outcome:
        value = command.payload["value"]
        info = tx.get_service_info()
        info[command.payload["name"]] = len(value)
        tx.set_service_info(info)
        event = TamsEvent(key=command.key, event_type="flows/updated", event={"v": value})
        return Outcome(status=204, events=[event])


async def test_a_command_whose_event_would_not_fit_is_refused_whole(store: SqliteStore) -> None:
    """Sent, the event would be dropped (above) after the change was made: the change is
    rolled back and refused instead, and the rest of its batch is applied."""
    applier = CommandApplier(
        store, {"set": Setter()}, is_retryable=lambda e: isinstance(e, StoreUnavailable)
    )
    limit = MAX_MESSAGE_BYTES - MESSAGE_OVERHEAD_BYTES
    commands = [
        CommandEnvelope(name="set", key="k", payload={"name": name, "value": "y" * size})
        for name, size in (("before", 10), ("huge", limit), ("after", 10))
    ]
    outcomes = await applier(commands)
    assert [o.status for o in outcomes] == [204, 400, 204]
    assert "nothing was changed" in outcomes[1].body["summary"]
    assert outcomes[1].events == []
    info = await store.read(lambda tx: tx.get_service_info())
    assert info.get("before") == 10 and info.get("after") == 10 and "huge" not in info
    # Redelivered, each is answered as first.
    again = await applier(commands)
    assert [o.status for o in again] == [204, 400, 204]
