"""An event too large for a Kafka message is dropped with an error, not retried: a retry
cannot help, and it would hold every later change of the partition. Over the real broker."""

from __future__ import annotations

import logging

import pytest
from aiokafka import AIOKafkaProducer

from tams_runtime.bus import ensure_topics
from tams_runtime.consumer import EventPublisher
from tams_schema.envelopes import TamsEvent
from tams_stack.stack import Stack

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
