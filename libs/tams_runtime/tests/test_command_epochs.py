"""Command topics in epochs (tams_runtime.epochs), over the real local broker.

The epochs here last one second, so a test sees several of them come and go."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tams_runtime.applier import CommandApplier
from tams_runtime.bus import CommandBus, CommandPublisher, ensure_topics
from tams_runtime.consumer import CommandConsumer
from tams_runtime.epochs import (
    RETIRE_AFTER_EPOCHS,
    CommandTopics,
    epoch_of,
    epoch_topic,
    topic_family,
)
from tams_runtime.metrics import CONSUMER_LAG
from tams_runtime.settings import KafkaSettings
from tams_schema.envelopes import CommandEnvelope, FollowUp, Outcome, TamsEvent
from tams_stack.stack import Stack
from tams_store import StoreUnavailable
from tams_store.sqlite import SqliteStore

from .test_command_bus import Counter, unique_settings
from .waiting import until

PERIOD_S = 1.0
# A gateway waits this many periods for a reply: longer than an epoch is read for, so a
# drained epoch is left unread for a while before it may be deleted.
REPLY_TIMEOUT_PERIODS = 4


def epoch_settings(infra: Stack) -> KafkaSettings:
    return unique_settings(infra).model_copy(
        update={
            "command_epoch_s": PERIOD_S,
            "reply_timeout_s": REPLY_TIMEOUT_PERIODS * PERIOD_S,
        }
    )


def current_epoch() -> int:
    return int(time.time() // PERIOD_S)


async def epoch_topics(settings: KafkaSettings) -> dict[int, str]:
    """The catalog command topic's epoch topics on the broker now, by epoch."""
    base = settings.topics.catalog_commands
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        names = await admin.list_topics()
    finally:
        await admin.close()
    return {e: n for n in names if (e := epoch_of(base, n)) is not None}


class Handled:
    """Wraps the applier to record every command the consumer handed it, redeliveries too."""

    def __init__(self, store: SqliteStore, counter: Counter) -> None:
        self.applier = CommandApplier(
            store, {"count": counter}, is_retryable=lambda e: isinstance(e, StoreUnavailable)
        )
        self.ids: list[str] = []

    async def __call__(self, commands: Sequence[CommandEnvelope]) -> list[Outcome]:
        outcomes = await self.applier(commands)
        self.ids += [c.command_id for c in commands]
        return outcomes


def test_epoch_topic_names() -> None:
    base = "tams.segments.commands"
    assert epoch_topic(base, 42) == "tams.segments.commands.epoch-42"
    assert epoch_of(base, "tams.segments.commands.epoch-42") == 42
    assert epoch_of(base, base) is None
    assert epoch_of(base, "tams.segments.commands.epoch-x") is None
    assert epoch_of(base, "tams.catalog.commands.epoch-42") is None
    assert topic_family("tams.segments.commands.epoch-42") == base
    assert topic_family("tams.events") == "tams.events"


async def test_commands_cross_epochs_in_order_and_drained_epochs_are_deleted(
    tams_infra: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tams_runtime.epochs")
    settings = epoch_settings(tams_infra)
    await ensure_topics(settings)
    store = SqliteStore(tmp_path / "tams.db")
    await store.open()
    counter = Counter()
    handled = Handled(store, counter)
    group = f"{settings.topic_prefix}-catalog"
    consumer = CommandConsumer(
        settings, settings.topics.catalog_commands, group, handled, lag_interval_s=0.1
    )
    await consumer.start()
    bus = CommandBus(settings)
    await bus.start()
    try:
        first = current_epoch()
        counts = []
        while current_epoch() < first + 4:
            reply = await bus.request(settings.topics.catalog_commands, "count", "flow-1", {})
            counts.append(reply.body["count"])
        # Every command answered, in order, and none handed to the handler twice: moving
        # to each new epoch resumed every partition at its committed offset.
        assert counts == list(range(1, len(counts) + 1))
        assert len(handled.ids) == len(set(handled.ids)) == len(counts)

        async def old_epochs_retired() -> bool:
            present = await epoch_topics(settings)
            # Deleted once it ended longer ago than a gateway waits for a reply.
            oldest = current_epoch() - REPLY_TIMEOUT_PERIODS
            return min(present) >= oldest and first not in present

        await until(old_epochs_retired)
        # Sending on for two more epochs brings none of the deleted ones back: the
        # producers no longer ask the broker about them (tansu would create them again).
        last = current_epoch()
        while current_epoch() < last + 2:
            await bus.request(settings.topics.catalog_commands, "count", "flow-1", {})
        await until(old_epochs_retired)
        base = settings.topics.catalog_commands
        deleted = [
            (epoch, record.created)
            for record in caplog.records
            if record.getMessage() == "deleted drained command topics"
            for name in record.__dict__["topics"]
            if (epoch := epoch_of(base, name)) is not None
        ]
        epochs = [epoch for epoch, _ in deleted]
        assert first in epochs
        assert len(epochs) == len(set(epochs)), "a deleted epoch came back"
        # None went while a gateway could still be waiting on a command sent to it.
        for epoch, deleted_at in deleted:
            assert deleted_at >= (epoch + 1) * PERIOD_S + settings.reply_timeout_s

        # Lag is reported under the command topic, whichever epochs it is spread over.
        async def lag_labelled_by_command_topic() -> bool:
            topics = {
                sample.labels["topic"]
                for metric in CONSUMER_LAG.collect()
                for sample in metric.samples
                if sample.labels["group"] == group
            }
            return topics == {settings.topics.catalog_commands}

        await until(lag_labelled_by_command_topic)
    finally:
        await bus.stop()
        await consumer.stop()
        await store.close()


async def test_a_restarted_consumer_reads_the_epochs_it_missed(
    tams_infra: Stack, tmp_path: Path
) -> None:
    """Commands sent while the service was down wait in their epochs, however old those are
    by the time it comes back, and are applied then, in the order they were sent (one key:
    an older epoch's before a newer one's); the drained epochs are deleted."""
    settings = epoch_settings(tams_infra)
    await ensure_topics(settings)
    store = SqliteStore(tmp_path / "tams.db")
    await store.open()
    publisher = CommandPublisher(settings, client_id="epochs-test")
    await publisher.start()
    sent: list[str] = []
    try:
        first = current_epoch()
        while current_epoch() < first + 2:
            command = CommandEnvelope(name="count", key="flow-1")
            await publisher.publish([FollowUp(service="catalog", command=command)])
            sent.append(command.command_id)
        missed = set(await epoch_topics(settings))
        assert {first, first + 1} <= missed

        async def all_old_enough() -> bool:
            return current_epoch() - RETIRE_AFTER_EPOCHS > first + 1

        await until(all_old_enough)
        counter = Counter()
        consumer = CommandConsumer(
            settings, settings.topics.catalog_commands, "epochs-restart", Handled(store, counter)
        )
        await consumer.start()
        try:

            async def all_applied() -> bool:
                return len(counter.applied) == len(sent)

            await until(all_applied)
            assert counter.applied == sent

            async def missed_epochs_retired() -> bool:
                return not missed & set(await epoch_topics(settings))

            await until(missed_epochs_retired)
        finally:
            await consumer.stop()
    finally:
        await publisher.stop()
        await store.close()


class Relay:
    """Applies a command by publishing an event and sending a follow-up to the segments
    service's command topic: a service's producer writing to two other topics."""

    def __call__(self, tx: Any, command: CommandEnvelope) -> Outcome:
        event = TamsEvent(key=command.key, event_type="flows/updated", event={})
        onward = CommandEnvelope(name="count", key=command.key)
        return Outcome(
            status=200, events=[event], commands=[FollowUp(service="segments", command=onward)]
        )


async def test_follow_ups_to_another_service_cross_epochs(
    tams_infra: Stack, tmp_path: Path
) -> None:
    """The relaying service's producer learnt of the other service's epoch topics from the
    broker's answer about all topics, before it first sent to one; its sends must not stall
    at its next metadata update."""
    settings = epoch_settings(tams_infra)
    await ensure_topics(settings)
    stores = [SqliteStore(tmp_path / f"{name}.db") for name in ("catalog", "segments")]
    for store in stores:
        await store.open()
    counter = Counter()
    segments = CommandConsumer(
        settings, settings.topics.segments_commands, "relay-segments", Handled(stores[1], counter)
    )
    await segments.start()
    relay = CommandApplier(
        stores[0], {"relay": Relay()}, is_retryable=lambda e: isinstance(e, StoreUnavailable)
    )
    catalog = CommandConsumer(settings, settings.topics.catalog_commands, "relay-catalog", relay)
    await catalog.start()
    bus = CommandBus(settings)
    await bus.start()
    try:
        first = current_epoch()
        sent = 0
        while current_epoch() < first + 3:
            reply = await bus.request(
                settings.topics.catalog_commands, "relay", "flow-1", {}, timeout=5
            )
            assert reply.status == 200
            sent += 1

        async def all_relayed() -> bool:
            return len(counter.applied) == sent

        await until(all_relayed, timeout=10)
    finally:
        await bus.stop()
        await catalog.stop()
        await segments.stop()
        for store in stores:
            await store.close()


async def test_a_producer_remembers_only_recent_epoch_topics(tams_infra: Stack) -> None:
    """A gateway only sends: it must not remember every epoch topic it ever made (one name
    per service every two seconds, for as long as it runs)."""
    settings = epoch_settings(tams_infra)
    now = [time.time()]
    topics = CommandTopics(settings, clock=lambda: now[0])
    base = settings.topics.catalog_commands
    try:
        for _ in range(12):
            assert epoch_of(base, await topics.topic(base)) == topics.epoch()
            now[0] += PERIOD_S

        async def made() -> bool:
            return not topics._creating

        await until(made)
        # This epoch's, the previous one's and the next one's, at most.
        assert len(topics._created) <= 3
    finally:
        await topics.stop()


async def test_a_restart_in_place_forgets_the_stopped_producer(tams_infra: Stack) -> None:
    """A component stopped and started again (a start retried while the broker was away)
    tracks its new producer only: the next epoch's topic is handed out at once."""
    settings = epoch_settings(tams_infra)
    now = [time.time()]
    topics = CommandTopics(settings, clock=lambda: now[0])
    base = settings.topics.catalog_commands
    stopped, started = (
        AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers) for _ in range(2)
    )
    try:
        await stopped.start()
        topics.track(stopped)
        await topics.topic(base)
        await stopped.stop()
        await topics.stop()
        await started.start()
        topics.track(started)
        now[0] += PERIOD_S
        async with asyncio.timeout(10):
            assert epoch_of(base, await topics.topic(base)) == topics.epoch()
    finally:
        await started.stop()
        await topics.stop()
