"""A command consumer that rests while idle (`KafkaSettings.quiet_after_ms`, for tansu): the
gateway that sent a command wakes it, and a command nobody announced is still applied, at
its slow poll. Over the real local broker, with a real SQLite store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from tams_runtime.bus import CommandBus, ensure_topics
from tams_runtime.consumer import CommandConsumer
from tams_runtime.settings import KafkaSettings
from tams_schema.envelopes import CommandEnvelope
from tams_stack.stack import Stack
from tams_store.sqlite import SqliteStore

from .test_command_bus import Counter, start_consumer, unique_settings
from .waiting import until


def resting(consumer: CommandConsumer) -> Callable[[], Awaitable[bool]]:
    async def is_resting() -> bool:
        return consumer.resting

    return is_resting


def resting_settings(infra: Stack, poll_ms: int) -> KafkaSettings:
    return unique_settings(infra).model_copy(
        update={"quiet_after_ms": 2000, "quiet_poll_ms": poll_ms, "reply_timeout_s": 20.0}
    )


async def test_a_resting_consumer_is_woken_by_the_gateway_that_sent_a_command(
    tams_infra: Stack,
    store: SqliteStore,
) -> None:
    # Polling once a minute: only a wake-up gets the second command applied in time.
    settings = resting_settings(tams_infra, poll_ms=60_000)
    await ensure_topics(settings)
    bus = CommandBus(settings)
    await bus.start()
    counter = Counter()
    consumer = await start_consumer(settings, store, counter)
    topic = settings.topics.catalog_commands
    try:
        # Sent while the new consumer still polls; its reply opens the connection on which
        # the consumer asks this gateway for wake-ups.
        first = await bus.request(topic, "count", "flow-1", {})

        await until(resting(consumer))
        second = await bus.request(topic, "count", "flow-1", {})
        assert (first.body, second.body) == ({"count": 1}, {"count": 2})
    finally:
        await bus.stop()
        await consumer.stop()


async def test_a_command_nobody_announced_is_applied_at_the_next_poll(
    tams_infra: Stack,
    store: SqliteStore,
) -> None:
    settings = resting_settings(tams_infra, poll_ms=300)
    await ensure_topics(settings)
    counter = Counter()
    consumer = await start_consumer(settings, store, counter)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        await until(resting(consumer))
        # As a service's follow-up or a restarted step would be: no gateway, no wake-up.
        command = CommandEnvelope(name="count", key="flow-1")
        await producer.send_and_wait(
            settings.topics.catalog_commands, command.model_dump_json().encode(), key=b"flow-1"
        )

        async def applied() -> bool:
            return counter.applied == [command.command_id]

        await until(applied)
    finally:
        await producer.stop()
        await consumer.stop()


def test_a_rest_shorter_than_the_wake_up_interval_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 20"):
        KafkaSettings(quiet_after_ms=10)
    assert KafkaSettings(quiet_after_ms=0).quiet_after_ms == 0
    assert KafkaSettings(quiet_after_ms=20).quiet_after_ms == 20
