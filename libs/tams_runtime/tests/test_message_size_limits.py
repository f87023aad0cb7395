"""A Kafka message size limit below the producer's, over the real broker: read at start, it
refuses up front the commands whose events would not fit; not read (tansu reports no broker
limit, and enforces none), a send the broker refuses as too large is dropped, counted and
logged, and the partition moves on instead of sending it again for ever."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)
from prometheus_client import REGISTRY

from tams_runtime.applier import CommandApplier
from tams_runtime.bus import CommandBus, ensure_topics
from tams_runtime.consumer import CommandConsumer
from tams_runtime.message_size import (
    MAX_MESSAGE_BYTES,
    LimitReader,
    MessageLimit,
    broker_limits,
    read_message_limit,
)
from tams_schema.envelopes import CommandEnvelope, FollowUp, Outcome, TamsEvent
from tams_stack.stack import Stack
from tams_store import StoreUnavailable
from tams_store.sqlite import SqliteStore

from .test_command_bus import read_records, unique_settings
from .waiting import until

TOPIC_LIMIT = 100_000


class Publisher:
    """Publishes the command's `value` in an event, and in a follow-up command if asked."""

    def __call__(self, tx: Any, command: CommandEnvelope) -> Outcome:
        value = command.payload["value"]
        event = TamsEvent(key=command.key, event_type="flows/updated", event={"v": value})
        follow_ups = []
        if command.payload.get("follow_up"):
            step = CommandEnvelope(name="next", key=command.key, payload={"v": value})
            follow_ups.append(FollowUp(service="segments", command=step))
        return Outcome(status=204, events=[event], commands=follow_ups)


async def start_consumer(
    settings: Any, store: SqliteStore, limit: MessageLimit
) -> tuple[CommandConsumer, CommandBus]:
    applier = CommandApplier(
        store,
        {"publish": Publisher()},
        is_retryable=lambda e: isinstance(e, StoreUnavailable),
        limit=limit,
    )
    consumer = CommandConsumer(
        settings, settings.topics.catalog_commands, "test-catalog", applier, limit=limit
    )
    await consumer.start()
    bus = CommandBus(settings)
    await bus.start()
    return consumer, bus


async def events_topic_limited(settings: Any, max_bytes: int | None) -> None:
    """The events topic made again, with `max.message.bytes` (None: without), as tansu then
    reports it."""
    configs = {} if max_bytes is None else {"max.message.bytes": str(max_bytes)}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([settings.topics.events])
        await admin.create_topics([NewTopic(settings.topics.events, 2, 1, topic_configs=configs)])
    finally:
        await admin.close()


async def refused_up_front(bus: CommandBus, settings: Any, value: str) -> None:
    """A command whose event would not fit gets 400, and publishes nothing; the next, small
    one is applied and its event published."""
    topic = settings.topics.catalog_commands
    large = await bus.request(topic, "publish", "f", {"value": value})
    assert large.status == 400
    assert f"at most {TOPIC_LIMIT} bytes" in large.body["summary"]
    small = await bus.request(topic, "publish", "f", {"value": "small"})
    assert small.status == 204
    [record] = await read_records(settings, settings.topics.events, 1)
    assert b"small" in record.value


def refusing_above(
    consumer: CommandConsumer, monkeypatch: pytest.MonkeyPatch, refusal: type[KafkaError]
) -> None:
    """A broker whose limit is below the one read at start (lowered since; tansu enforces
    none): what is above `TOPIC_LIMIT` fails as aiokafka fails a send for the broker's
    MESSAGE_TOO_LARGE (error 10) or RECORD_LIST_TOO_LARGE (18), neither retried."""
    assert consumer.producer is not None
    send = consumer.producer.send

    async def smaller_broker(topic: str, value: bytes, **kwargs: Any) -> asyncio.Future[Any]:
        if len(value) <= TOPIC_LIMIT:
            return await send(topic, value, **kwargs)
        refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        refused.set_exception(refusal())
        return refused

    monkeypatch.setattr(consumer.producer, "send", smaller_broker)


async def test_a_topic_limit_read_at_start_refuses_what_would_not_fit_up_front(
    tams_infra: Stack, store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    settings = unique_settings(tams_infra)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        # tansu reports a topic's configs given at creation (and no broker limit).
        await admin.create_topics(
            [
                NewTopic(
                    settings.topics.events,
                    2,
                    1,
                    topic_configs={"max.message.bytes": str(TOPIC_LIMIT)},
                )
            ]
        )
        assert await broker_limits(admin, [settings.topics.events]) == {
            settings.topics.events: TOPIC_LIMIT
        }
    finally:
        await admin.close()
    await ensure_topics(settings)
    limit = MessageLimit()
    with caplog.at_level(logging.INFO, logger="tams_runtime.message_size"):
        consumer, bus = await start_consumer(settings, store, limit)
    try:
        assert limit.bytes == TOPIC_LIMIT
        read = [r for r in caplog.records if r.getMessage() == "Kafka message size limit"]
        assert len(read) == 1
        assert read[0].__dict__["broker_limits"] == {settings.topics.events: TOPIC_LIMIT}
        await refused_up_front(bus, settings, "y" * TOPIC_LIMIT)
    finally:
        await bus.stop()
        await consumer.stop()


@pytest.mark.parametrize("refusal", [MessageSizeTooLargeError, RecordListTooLargeError])
async def test_a_send_the_broker_refuses_as_too_large_is_dropped_and_the_partition_moves_on(
    tams_infra: Stack,
    store: SqliteStore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    refusal: type[KafkaError],
) -> None:
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    limit = MessageLimit()
    consumer, bus = await start_consumer(settings, store, limit)
    # tansu reports no broker limit: the producer's stands.
    assert limit.bytes == MAX_MESSAGE_BYTES
    refusing_above(consumer, monkeypatch, refusal)

    def dropped_to() -> tuple[float | None, ...]:
        return tuple(
            REGISTRY.get_sample_value("tams_messages_too_large_total", {"topic": topic})
            for topic in (settings.topics.events, settings.topics.segments_commands)
        )

    # Both series exist from the start, at 0.
    assert dropped_to() == (0, 0)
    topic = settings.topics.catalog_commands
    try:
        with caplog.at_level(logging.ERROR, logger="tams_runtime.consumer"):
            payload = {"value": "y" * TOPIC_LIMIT, "follow_up": True}
            large = await bus.request(topic, "publish", "f", payload)
            # Applied and answered before its sends: the change is in the store.
            assert large.status == 204
            # A later fetch's sends wait for the earlier's: they go only if it moved on.
            later = await bus.request(topic, "publish", "f", {"value": "later"})
            assert later.status == 204
            [record] = await read_records(settings, settings.topics.events, 1)
            assert b"later" in record.value
        assert dropped_to() == (1, 1)
        dropped = {
            (r.getMessage(), getattr(r, "command_id", None), getattr(r, "event_type", None))
            for r in caplog.records
            if "too large" in r.getMessage()
        }
        assert dropped == {
            (
                "event too large for a Kafka message; not published",
                large.command_id,
                "flows/updated",
            ),
            ("follow-up command too large for a Kafka message; not sent", large.command_id, None),
        }
        # Not sending anything again: ready, with nothing held back from the commit.
        await until(consumer.applying)
    finally:
        await bus.stop()
        await consumer.stop()


async def test_a_limit_lowered_while_running_is_read_again_at_the_first_refusal(
    tams_infra: Stack,
    store: SqliteStore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The events topic's limit falls below the one read at start: the first event the
    broker refuses is dropped, and has the limits read again, so the next command whose
    event would not fit is refused up front (400, nothing written), not dropped. Raised
    back, the limit is read again without a restart."""
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    limit = MessageLimit()
    consumer, bus = await start_consumer(settings, store, limit)
    assert limit.bytes == MAX_MESSAGE_BYTES
    consumer.limits.interval_s = 0.2  # rather than every 30 s
    refusing_above(consumer, monkeypatch, MessageSizeTooLargeError)
    # The limit lowered, as the broker reports it: tansu reports a topic's configs given at
    # its creation, so the topic is made again with it.
    await events_topic_limited(settings, TOPIC_LIMIT)

    def dropped() -> float | None:
        labels = {"topic": settings.topics.events}
        return REGISTRY.get_sample_value("tams_messages_too_large_total", labels)

    topic = settings.topics.catalog_commands
    try:
        with caplog.at_level(logging.WARNING, logger="tams_runtime.message_size"):
            first = await bus.request(topic, "publish", "f", {"value": "y" * TOPIC_LIMIT})
            assert first.status == 204  # applied, its event dropped

            async def read_again() -> bool:
                return limit.bytes == TOPIC_LIMIT

            await until(read_again)
        assert dropped() == 1
        changed = [r for r in caplog.records if "limit changed" in r.getMessage()]
        assert [r.__dict__["max_message_bytes"] for r in changed] == [TOPIC_LIMIT]
        await refused_up_front(bus, settings, "z" * TOPIC_LIMIT)
        assert dropped() == 1

        # The limit raised back (the broker accepts large messages again).
        await events_topic_limited(settings, None)
        monkeypatch.undo()

        async def raised() -> bool:
            return limit.bytes == MAX_MESSAGE_BYTES

        await until(raised)
        large = await bus.request(topic, "publish", "f", {"value": "w" * TOPIC_LIMIT})
        assert large.status == 204
        [record] = await read_records(settings, settings.topics.events, 1)
        assert b"wwww" in record.value
    finally:
        await bus.stop()
        await consumer.stop()


async def test_a_broker_that_will_not_say_leaves_the_producers_limit(
    tams_infra: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """DescribeConfigs refused (an ACL): the service starts, with a warning."""

    async def refused(*args: Any, **kwargs: Any) -> None:
        raise ClusterAuthorizationFailedError()

    monkeypatch.setattr(AIOKafkaAdminClient, "describe_configs", refused)
    settings = unique_settings(tams_infra)
    with caplog.at_level(logging.WARNING, logger="tams_runtime.message_size"):
        limit = await read_message_limit(settings.bootstrap_servers, [settings.topics.events])
    assert limit == MAX_MESSAGE_BYTES
    assert any("did not report" in r.getMessage() for r in caplog.records)


async def test_an_unreachable_broker_fails_the_read_as_it_fails_a_producers_start() -> None:
    """`service._start` waits for the broker (TAMS_KAFKA_START_WAIT_S) only on
    KafkaConnectionError: the read must not turn an unreachable broker into another error,
    nor into the producer's limit."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(KafkaConnectionError):
        await read_message_limit(f"127.0.0.1:{port}", ["t.events"])


async def test_the_stop_leaves_no_read_again_running() -> None:
    """A broker that takes connections and never answers: a refusal while the last read
    again still waits starts no second one, and one after the stop (a send the producer
    flushes as it stops) starts none; the stop leaves no read running past the service."""
    connections: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    def reads_again() -> set[asyncio.Task[Any]]:
        return {
            t
            for t in asyncio.all_tasks()
            if t.get_coro().__qualname__ == "LimitReader._read_again"  # type: ignore[union-attr]
        }

    reader = LimitReader(MessageLimit(), f"127.0.0.1:{port}", ["t.events"], interval_s=0)
    try:
        reader.refused()
        reader.refused()
        started = reads_again()
        assert len(started) == 1
        await reader.stop()
        assert all(t.done() for t in started)
        reader.refused()
        assert reads_again() == set()
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()
