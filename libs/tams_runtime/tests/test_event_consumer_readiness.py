"""The event consumer's readiness tells the truth: a handler stuck retrying a batch (its
store down, say) makes it not ready until the batch goes through. Over the real local
broker."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from tams_runtime.bus import ensure_topics
from tams_runtime.consumer import EventPublisher
from tams_runtime.event_consumer import EventConsumer, ReceivedEvent
from tams_stack.stack import Stack

from .test_command_bus import unique_settings
from .test_event_consumer_idle import publish
from .waiting import until


class FlakyHandler:
    """Refuses every batch while `broken`, as a handler whose store is down would."""

    def __init__(self) -> None:
        self.broken = True
        self.received: list[str] = []

    async def __call__(self, events: Sequence[ReceivedEvent]) -> None:
        if self.broken:
            raise RuntimeError("store unavailable")
        self.received += [e.event.event_id for e in events]


async def test_a_handler_stuck_on_a_batch_makes_the_consumer_not_ready(
    tams_infra: Stack,
) -> None:
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    handler = FlakyHandler()
    consumer = EventConsumer(settings, f"{settings.topic_prefix}-ready", handler)
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        assert await consumer.healthy()
        sent = await publish(EventPublisher(producer, settings.topics.events), 3)

        async def not_ready() -> bool:
            return not await consumer.healthy()

        await until(not_ready)
        assert handler.received == []

        handler.broken = False

        async def delivered_and_ready() -> bool:
            return handler.received == sent and await consumer.healthy()

        await until(delivered_and_ready)
    finally:
        await producer.stop()
        await consumer.stop()
