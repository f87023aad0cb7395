"""The event consumer while its handler wants no event: it reads on, less often, and skips
nothing once the handler wants events again. Over the real local broker."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tams_runtime.bus import ensure_topics
from tams_runtime.consumer import EventPublisher
from tams_runtime.event_consumer import EventConsumer, ReceivedEvent
from tams_runtime.settings import KafkaSettings
from tams_schema.envelopes import TamsEvent
from tams_stack.stack import Stack

from .test_command_bus import unique_settings
from .waiting import until


class Subscriber:
    """A handler that wants the event types in `wanted` (none at first)."""

    def __init__(self) -> None:
        self.wanted: frozenset[str] = frozenset()
        self.received: list[str] = []

    def wanted_types(self) -> frozenset[str]:
        return self.wanted

    async def __call__(self, events: Sequence[ReceivedEvent]) -> None:
        self.received += [e.event.event_id for e in events]


async def publish(events: EventPublisher, count: int) -> list[str]:
    batch = [TamsEvent(key="flow-1", event_type="flows/updated", event={}) for _ in range(count)]
    await events.publish(batch)
    return [e.event_id for e in batch]


async def committed_to_end(settings: KafkaSettings, group: str) -> bool:
    reader = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=group)
    await reader.start()
    try:
        partitions = [
            TopicPartition(settings.topics.events, p) for p in range(settings.events_partitions)
        ]
        ends = await reader.end_offsets(partitions)
        behind = [tp for tp in partitions if (await reader.committed(tp) or 0) < ends[tp]]
        return not behind
    finally:
        await reader.stop()


async def test_an_idle_consumer_reads_on_and_skips_nothing_once_wanted(
    tams_infra: Stack,
) -> None:
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    subscriber = Subscriber()
    group = f"{settings.topic_prefix}-delivery"
    consumer = EventConsumer(settings, group, subscriber, idle_read_interval_s=0.5)
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    events = EventPublisher(producer, settings.topics.events)
    try:
        # Nobody wants these: they are read (the group's offsets reach the end), not handled.
        await publish(events, 20)

        async def read_to_end() -> bool:
            return await committed_to_end(settings, group)

        await until(read_to_end)
        assert subscriber.received == []

        # Wanted from now on: every later event reaches the handler, in order.
        subscriber.wanted = frozenset({"flows/updated"})
        later = await publish(events, 10)

        async def all_handled() -> bool:
            return len(subscriber.received) >= len(later)

        await until(all_handled)
        assert subscriber.received == later
    finally:
        await producer.stop()
        await consumer.stop()
